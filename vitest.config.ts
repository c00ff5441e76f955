import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 30_000,
    pool: "forks",
    // Two test files at once: the tests mostly wait on real processes, files, git and containers,
    // so on the reference machine (2 cores) two workers take the suite from ~9.5 to ~5.5 minutes.
    // Every file uses its own temp dirs, uid range and cgroup root, so files never share state.
    maxWorkers: 2,
  },
});
