// Builds the demo into dist/demo, which `duet serve` serves at /. `duet/client` and
// `duet/vue` are aliased to their TypeScript sources, so the demo always runs the client of
// this checkout (no build of the package needed first) while importing it like a user would.
import { fileURLToPath } from 'node:url';
import vue from '@vitejs/plugin-vue';
import { defineConfig } from 'vite';

const browserSrc = fileURLToPath(new URL('../src/browser', import.meta.url));
const backend = process.env.DUET_BACKEND ?? 'ws://127.0.0.1:8080';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  plugins: [vue()],
  resolve: {
    alias: [
      { find: /^duet\/client$/, replacement: `${browserSrc}/client.ts` },
      { find: /^duet\/vue$/, replacement: `${browserSrc}/vue.ts` },
    ],
  },
  build: {
    outDir: fileURLToPath(new URL('../dist/demo/', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 400,
  },
  // `npx vite demo` for development: the WebSocket endpoints come from a running `duet serve`.
  server: {
    proxy: {
      '/channel': { target: backend, ws: true },
      '/echo': { target: backend, ws: true },
    },
  },
});
