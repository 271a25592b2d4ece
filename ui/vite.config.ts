// Builds the app into the Python package (src/cairn/ui/dist/), which the gateway serves and the
// wheel ships, so `pip install .` + `cairn up` needs no Node.js. The output is committed and CI
// rebuilds it and diffs: the build must be deterministic (no timestamps, stable hashed names).
import { defineConfig } from "vitest/config";

declare const process: { env: Record<string, string | undefined> };
const target = process.env.CAIRN_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "../src/cairn/ui/dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    target: "es2022",
    modulePreload: { polyfill: false },
  },
  // Development: `CAIRN_URL=http://127.0.0.1:<port> npx vite` forwards the API to a real `cairn up`.
  server: { proxy: { "/api": { target, changeOrigin: false } } },
  test: { environment: "node", include: ["test/**/*.test.ts"] },
});
