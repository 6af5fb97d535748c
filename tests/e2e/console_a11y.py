"""What every console page is checked for in Chromium, at a desktop's and at a phone's width.

axe-core (Deque's maintained engine, bundled by the axe-playwright-python package) checks WCAG 2
A and AA and its best practices: names of controls, text alternatives, landmarks, contrast...
Every violation fails, whatever its impact: the ones axe found (moderate: two landmarks of one
name) were fixed in the pages, so none is kept as a known one. What axe leaves undecided
("incomplete") fails too, except colour contrast, which axe cannot measure on short text (a
count: "4"), on SVG text (the chart's axes) or on a cell scrolled out of its box on a phone:
those elements' contrast is computed here instead.

The project's own checks are only what axe does not check: exactly one h1; every SVG either
hidden from assistive technology or a picture (role img, whose name axe then checks); every
time in the operator's zone with its UTC time in the name Chromium gives it; nothing wider
than the screen (wide tables scroll in a box of their own).
"""
from __future__ import annotations

import re
from functools import cache
from typing import Any

from ..server.console_client import assert_times_in_zone

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@cache
def axe() -> Any:
    """axe-core as the package bundles it (imported here: without the package the browser
    tests say why they cannot run, see the chromium fixture)."""
    from axe_playwright_python.async_playwright import Axe

    return Axe()

# The contrast (WCAG AA: 4.5:1, 3:1 for large text) of the elements named by CSS selectors:
# the colour of the text (the fill of SVG text) over the backgrounds of it and its ancestors.
CONTRAST = r"""selectors => {
  const rgba = c => { const v = (c.match(/[\d.]+/g) || [0, 0, 0, 0]).map(Number);
                      return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1]; };
  const over = (top, below) => [0, 1, 2].map(i => top[i] * top[3] + below[i] * (1 - top[3]));
  const channel = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const luminance = c => 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
  const behind = e => {
    const layers = [];
    for (let x = e; x; x = x.parentElement) {
      const c = rgba(getComputedStyle(x).backgroundColor);
      if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    return layers.reverse().reduce((below, layer) => over(layer, below), [255, 255, 255]);
  };
  const problems = [];
  for (const selector of selectors) {
    const e = document.querySelector(selector);
    if (!e) { problems.push('no element ' + selector); continue; }
    const s = getComputedStyle(e), back = behind(e);
    const ink = over(rgba(e instanceof SVGElement ? s.fill : s.color), back);
    const [hi, lo] = [luminance(ink), luminance(back)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05), size = parseFloat(s.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5))
      problems.push(`contrast ${ratio.toFixed(2)}: ${e.tagName}.${e.getAttribute('class')} `
                    + `"${e.textContent.trim().slice(0, 40)}"`);
  }
  return problems;
}"""

OWN = r"""() => {
  const problems = [];
  if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one h1');
  for (const e of document.querySelectorAll('svg'))
    if (!e.closest('[aria-hidden=true]') && e.getAttribute('role') !== 'img')
      problems.push('an SVG neither hidden nor a picture: ' + e.outerHTML.slice(0, 120));
  const wide = [...document.querySelectorAll('body *')].filter(
      e => e.getBoundingClientRect().right > window.innerWidth + 0.5 && !e.closest('.scroll'));
  if (document.documentElement.scrollWidth > window.innerWidth || wide.length)
    problems.push('wider than the screen: ' + wide.map(e => e.tagName + '.' + e.className).join(', '));
  return problems;
}"""

UTC = re.compile(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC\)$")


def target(node: dict[str, Any]) -> str:
    [selector] = node["target"]  # no frames, no shadow roots in the console
    return selector


async def axe_problems(page: Any) -> list[str]:
    """What axe finds on the page, and the contrast of what it could not decide."""
    found = (await axe().run(page, options={"resultTypes": ["violations", "incomplete"]})).response
    problems = [f"{v['id']} ({v['impact']}): {v['help']}: " + ", ".join(target(n) for n in v["nodes"])
                for v in found["violations"]]
    undecided = [n for v in found["incomplete"] if v["id"] == "color-contrast" for n in v["nodes"]]
    problems += await page.evaluate(CONTRAST, [target(n) for n in undecided])
    problems += [f"axe could not decide {v['id']} ({v['help']}): " + ", ".join(target(n) for n in v["nodes"])
                 for v in found["incomplete"] if v["id"] != "color-contrast"]
    return problems


async def accessible_names(page: Any, role: str) -> list[str]:
    """The names Chromium gives assistive technology for every shown element of ``role``."""
    cdp = await page.context.new_cdp_session(page)
    try:
        nodes = (await cdp.send("Accessibility.getFullAXTree"))["nodes"]
    finally:
        await cdp.detach()
    return [n.get("name", {}).get("value", "") for n in nodes
            if not n.get("ignored") and n.get("role", {}).get("value") == role]


async def focused_name(page: Any) -> str:
    """The name Chromium gives assistive technology for the element that has the focus."""
    cdp = await page.context.new_cdp_session(page)
    try:
        focused = await cdp.send("Runtime.evaluate", {"expression": "document.activeElement"})
        nodes = (await cdp.send("Accessibility.getPartialAXTree",
                                {"objectId": focused["result"]["objectId"], "fetchRelatives": False}))["nodes"]
    finally:
        await cdp.detach()
    return nodes[0].get("name", {}).get("value", "")


async def time_problems(page: Any) -> list[str]:
    """Every time shown says its UTC time (the one in its ``datetime``) in its accessible name."""
    shown = await page.evaluate("""() => [...document.querySelectorAll('time')]
        .filter(e => e.checkVisibility()).map(e => e.dateTime)""")
    names = await accessible_names(page, "time")
    said = sorted(m[1].replace(" ", "T") + "Z" if (m := UTC.search(name)) else f"no UTC in {name!r}" for name in names)
    return [] if said == sorted(shown) else [f"times {sorted(shown)} named {said}"]


async def page_problems(page: Any) -> list[str]:
    return await axe_problems(page) + await page.evaluate(OWN) + await time_problems(page)


async def check_page(page: Any, zone: str, name: str) -> None:
    """The page passes every check at a desktop's and at a phone's width (the same page laid
    out again, so a page that a form's answer showed is checked too); the size it had is kept."""
    size = page.viewport_size
    for width in (DESKTOP, PHONE):
        await page.set_viewport_size(width)
        problems = await page_problems(page)
        assert problems == [], f"{name} at {width['width']} px ({page.url}):\n" + "\n".join(problems)
    await page.set_viewport_size(size)
    assert_times_in_zone(await page.content(), zone)
