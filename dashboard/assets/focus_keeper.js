// InfiniteTalk Studio: keep the keyboard focus on a widget that Streamlit redraws (see dashboard/app.py).
(function install(page) {
  if (page.defaultView.__studioFocusKeeper) return;
  const script = page.createElement("script");
  script.textContent = `(${function keeper() {
    window.__studioFocusKeeper = true;
    const FOCUSABLE = 'button, [href], input, select, textarea, [tabindex]:not([tabindex="-1"])';
    let last = null;
    const keyed = (element) => element.closest('[class*="st-key-"]');
    const keyOf = (box) => [...box.classList].find((name) => name.startsWith("st-key-"));
    document.addEventListener("focusin", (event) => {
      const box = keyed(event.target);
      if (!box) { last = null; return; }
      const parts = [...box.querySelectorAll(FOCUSABLE)];
      last = {element: event.target, key: keyOf(box), index: Math.max(0, parts.indexOf(event.target))};
    }, true);
    const restore = () => {
      if (!last || last.element.isConnected && !last.element.disabled) return;
      const active = document.activeElement;
      if (active && active !== document.body) return;
      const box = document.querySelector("." + CSS.escape(last.key));
      if (!box) return;
      const parts = [...box.querySelectorAll(FOCUSABLE)].filter((part) => !part.disabled);
      const target = parts[Math.min(last.index, parts.length - 1)];
      if (target) target.focus({preventScroll: true});
    };
    new MutationObserver(restore).observe(document.body, {childList: true, subtree: true});
  }})();`;
  page.head.appendChild(script);
})(window.parent.document);
