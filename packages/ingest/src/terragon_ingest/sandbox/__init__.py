"""Sandboxes, seen two ways: a read-only reader (run correlation) and delivery (run start).

reader.py        the reader per provider: HEAD, changed paths, one file (what correlation asks)
git.py           git against an untrusted checkout: private git dir, minimal env, killable, capped
files.py         one small regular file inside a checkout, no symlink followed, no FIFO blocking
diff_parser.py   `git diff --name-status -z` / `git status --porcelain -z` → changed paths
errors.py        SandboxReadError, SandboxFileRefused
delivery.py      `sendDaemonMessage` (run start only)

`reader` and its helpers may never import the run-context writers (import-linter enforces it);
`delivery` is used only by run start.
"""
