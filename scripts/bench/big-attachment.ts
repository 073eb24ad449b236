import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { idToken } from '../../src/core/ids.ts';
import { startLargeAttachmentPod } from '../../test/helpers/large-attachment-pod.ts';
import { runChild, type ChildRuntime } from './processes.ts';
import type { ArchiveResult, BigAttachmentResult } from './types.ts';

/**
 * One message with an attachment of `megabytes` MB, archived end to end into a Maildir by a process of its own: the
 * agent's base64 body (served by a proxy in front of a small emulated pod, test/helpers/large-attachment-pod.ts)
 * decoded into a scratch file, converted and staged as a stream, copied into each recipient's Maildir. The process's
 * peak RSS is the large-attachment figure.
 */
export async function measureBigAttachment(
  runtime: ChildRuntime,
  task: { megabytes: number; work: string; botUsername: string; botPublicKeyPem: string; privateKeyPath: string },
): Promise<BigAttachmentResult> {
  const pod = await startLargeAttachmentPod({
    seed: 1,
    users: 8,
    streams: 4,
    messages: 40,
    botUsername: task.botUsername,
    botPublicKeyPem: task.botPublicKeyPem,
    size: task.megabytes * 1024 * 1024,
  });
  try {
    const result = await runChild<ArchiveResult>(runtime, {
      kind: 'archive',
      config: {
        dataDir: 'data-big',
        connectors: [
          {
            id: 'bench-big',
            source: {
              kind: 'symphony',
              podUrl: pod.url,
              username: task.botUsername,
              privateKeyPath: task.privateKeyPath,
            },
            destination: { kind: 'maildir', root: 'maildir-big' },
          },
        ],
      },
      baseDir: task.work,
      connectorId: 'bench-big',
      cycles: 1,
    });
    const [cycle] = result.cycles;
    if (!cycle || cycle.run.quarantined > 0) throw new Error('the large attachment was not archived');
    const root = path.join(task.work, 'maildir-big');
    let itemBytes = 0;
    for (const mailbox of await readdir(root)) {
      const cur = path.join(root, mailbox, '.INBOX.Symphony', 'cur');
      for (const name of await readdir(cur)) {
        if (name.includes(`Q${idToken(pod.messageId)}.`)) itemBytes = (await stat(path.join(cur, name))).size;
      }
    }
    if (itemBytes === 0) throw new Error('no Maildir holds the message with the large attachment');
    return {
      kind: 'big-attachment',
      attachmentBytes: pod.size,
      itemBytes,
      ms: cycle.durationMs,
      maxRssKb: result.maxRssKb,
      startRssKb: result.startRssKb,
    };
  } finally {
    await pod.close();
  }
}
