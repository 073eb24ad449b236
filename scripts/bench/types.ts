import type { SourceStats } from '../../src/source/source.ts';
import type { RunRow } from '../../src/store/state-store.ts';

/** Work handed to `child.ts`, one task per child process so each gets its own peak RSS and CPU profile. */
export type ChildTask =
  | {
      kind: 'archive';
      /** A config object as `parseConfig` takes it, relative paths resolved against `baseDir`. */
      config: unknown;
      baseDir: string;
      connectorId: string;
      /** 2 adds the "nothing new" cycle on the same store right after the first. */
      cycles: 1 | 2;
    }
  | {
      kind: 'stages';
      podUrl: string;
      username: string;
      privateKeyPath: string;
    };

export interface CycleResult {
  durationMs: number;
  run: RunRow;
  source: SourceStats;
}

export interface ArchiveResult {
  kind: 'archive';
  cycles: CycleResult[];
  /** `process.resourceUsage().maxRSS` after the first cycle, in KB. */
  maxRssKb: number;
  /** RSS before the first cycle, with every module loaded, in KB: the floor under `maxRssKb`. */
  startRssKb: number;
  /** Highest `heapUsed` and `external` (Buffers included) sampled during the first cycle, in KB. */
  peakHeapUsedKb: number;
  peakExternalKb: number;
  /** CPU time of the first cycle, all threads of the process. */
  cpuMs: number;
}

export interface StagesResult {
  kind: 'stages';
  fetch: {
    ms: number;
    streams: number;
    messages: number;
    attachments: number;
    attachmentBytes: number;
    requests: number;
  };
  convert: {
    messages: number;
    failed: number;
    bytes: number;
    wallMs: number;
    cpuMs: number;
  };
}

/** One message with a large attachment archived end to end into a Maildir (big-attachment.ts). */
export interface BigAttachmentResult {
  kind: 'big-attachment';
  attachmentBytes: number;
  /** The filed message: the attachment base64-encoded plus the text parts and headers. */
  itemBytes: number;
  /** The whole cycle: the small pod's other messages too. */
  ms: number;
  maxRssKb: number;
  startRssKb: number;
}

export type ChildResult = ArchiveResult | StagesResult;
