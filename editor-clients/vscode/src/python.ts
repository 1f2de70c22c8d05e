// Pure: which Python runs the server (the file-system check is passed in, for the tests).
import * as path from "path";

/**
 * The configured Python if set; else `.venv/bin/python` of the nearest folder (each start folder
 * and its parents) whose `.venv` has completer installed (`.venv/bin/completer`); else `python3`.
 * Checking for the `completer` script keeps a project's own unrelated venv from being picked.
 */
export function resolvePython(configured: string | undefined, startDirs: string[],
                              exists: (file: string) => boolean): string {
  if (configured && configured.trim()) return configured.trim();
  for (const start of startDirs) {
    let dir = path.resolve(start);
    for (;;) {
      const venv = path.join(dir, ".venv", "bin");
      if (exists(path.join(venv, "completer")) && exists(path.join(venv, "python"))) {
        return path.join(venv, "python");
      }
      const parent = path.dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  return "python3";
}
