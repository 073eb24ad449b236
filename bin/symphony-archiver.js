#!/usr/bin/env -S node --max-old-space-size=384
// The heap limit sets how much garbage V8 lets pile up before a full collection, not what the archiver needs: its
// live heap stays near 50 MB whatever the archive's size, and without a limit V8 on a large machine grows the heap
// to three times that between collections (docs/performance.md). Run `node --max-old-space-size=N` on this file for
// another limit.
import '../dist/cli/main.js';
