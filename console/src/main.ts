import "maplibre-gl/dist/maplibre-gl.css";
import "./style.css";
import { prewarm, setWorkerUrl } from "maplibre-gl";
// MapLibre's worker, bundled by Vite with the console and served by the hub like any other asset.
import workerUrl from "maplibre-gl/dist/maplibre-gl-worker.mjs?worker&url";
import { createApp } from "vue";
import App from "./App.vue";
import { i18n } from "./i18n";
import { registerBuiltinLayers } from "./layers";
import { createConsoleRouter, prefetchPage } from "./router";

setWorkerUrl(workerUrl);
prewarm(); // the map's worker starts while the page and its data load
registerBuiltinLayers();
document.documentElement.lang = i18n.global.locale.value;
const router = createConsoleRouter();
prefetchPage(router, location.pathname);
createApp(App).use(i18n).use(router).mount("#app");
