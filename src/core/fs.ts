import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

/** fsync(2) of a directory: what makes the names created or renamed in it durable ("NOTES" in fsync(2)). */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
