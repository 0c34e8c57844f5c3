import { createI18n } from "vue-i18n";
import { LOCALES, type Locale } from "./messages";

const STORED = "cityhub.locale";

function initialLocale(): Locale {
  const stored = typeof localStorage !== "undefined" ? localStorage.getItem(STORED) : null;
  return stored === "en" || stored === "zh-CN" ? stored : "zh-CN";
}

export const i18n = createI18n({
  legacy: false,
  locale: initialLocale(),
  fallbackLocale: "zh-CN",
  messages: LOCALES,
});

export function setLocale(locale: Locale): void {
  i18n.global.locale.value = locale;
  localStorage.setItem(STORED, locale);
  document.documentElement.lang = locale;
}
