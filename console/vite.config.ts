import { fileURLToPath } from "node:url";
import vue from "@vitejs/plugin-vue";
import { defineConfig } from "vitest/config";

// The build goes into the Python package, where the hub serves it from (CITYHUB_CONSOLE_DIR overrides).
const outDir = fileURLToPath(new URL("../src/cityhub/console_dist", import.meta.url));

export default defineConfig({
  plugins: [vue()],
  base: "/",
  worker: { format: "es" },
  build: {
    outDir,
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
    rollupOptions: {
      output: {
        manualChunks(id: string) {
          if (id.includes("maplibre-gl")) return "maplibre";
          if (id.includes("echarts") || id.includes("zrender")) return "echarts";
          if (id.includes("node_modules")) return "vendor";
          return undefined;
        },
      },
    },
  },
  server: {
    proxy: { "/api": "http://127.0.0.1:8000", "/ngsi-ld": "http://127.0.0.1:8000" },
  },
  test: {
    environment: "jsdom",
    include: ["tests/**/*.test.ts"],
  },
});
