import "maplibre-gl/dist/maplibre-gl.css";
import "./style.css";
import { createApp } from "vue";
import App from "./App.vue";
import { i18n } from "./i18n";
import { registerBuiltinLayers } from "./layers";
import { createConsoleRouter } from "./router";

registerBuiltinLayers();
document.documentElement.lang = i18n.global.locale.value;
createApp(App).use(i18n).use(createConsoleRouter()).mount("#app");
