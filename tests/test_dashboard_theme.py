"""The dashboard's theme (.streamlit/config.toml): readable colours, and light or dark as the system prefers.

Issue 29: the Submit button's white on orange was 4.30:1 (WCAG AA asks 4.5:1 for text), and `base = "light"`
kept the app light on a desktop set to dark.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from streamlit import config as streamlit_config

CONFIG = Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml"
AA_TEXT = 4.5
WHITE = "#ffffff"


def _theme() -> dict[str, Any]:
    return tomllib.loads(CONFIG.read_text())["theme"]


def luminance(colour: str) -> float:
    """WCAG 2.x relative luminance of a #rrggbb colour."""
    channels = [int(colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    """WCAG 2.x contrast ratio, 1 to 21."""
    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_contrast_formula_gives_wcags_own_figures() -> None:
    assert contrast("#000000", WHITE) == pytest.approx(21.0)
    assert contrast("#d9480f", WHITE) == pytest.approx(4.30, abs=0.01), "the issue's measured figure"


def test_white_text_on_the_primary_button_meets_wcag_aa() -> None:
    theme = _theme()
    for scheme in ("light", "dark"):
        primary = theme[scheme].get("primaryColor", theme["primaryColor"])
        assert contrast(primary, WHITE) >= AA_TEXT, f"{scheme}: white on {primary}"
    primary = theme["primaryColor"]
    assert contrast(primary, faded(primary, WHITE, 0.1)) >= AA_TEXT, "a selected segment: primary on its tint"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_each_scheme_has_readable_text_and_links(scheme: str) -> None:
    colours = _theme()[scheme]
    for ground in ("backgroundColor", "secondaryBackgroundColor"):
        for ink in ("textColor", "linkColor"):
            assert contrast(colours[ink], colours[ground]) >= AA_TEXT, f"{scheme}: {ink} on {ground}"
    sidebar = colours["sidebar"]["backgroundColor"]
    assert contrast(colours["textColor"], sidebar) >= AA_TEXT


def faded(ink: str, ground: str, share: float = 0.6) -> str:
    """`ink` at `share` opacity over `ground`: how Streamlit draws captions and help text."""
    mixed = [round(share * int(ink[i : i + 2], 16) + (1 - share) * int(ground[i : i + 2], 16)) for i in (1, 3, 5)]
    return "#" + "".join(f"{channel:02x}" for channel in mixed)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_captions_are_readable_on_every_ground(scheme: str) -> None:
    """axe-core found captions at 4.45:1 on white and 4.3:1 in the sidebar (text at 60 %)."""
    colours = _theme()[scheme]
    for ground in (
        colours["backgroundColor"],
        colours["secondaryBackgroundColor"],
        colours["sidebar"]["backgroundColor"],
    ):
        assert contrast(faded(colours["textColor"], ground), ground) >= AA_TEXT, ground
    if "codeTextColor" in colours:
        code_ground = "#fdfcfb"  # Streamlit's inline-code background on this light ground, as axe-core read it
        assert contrast(faded(colours["codeTextColor"], code_ground), code_ground) >= AA_TEXT


def test_the_theme_follows_the_systems_light_or_dark_setting() -> None:
    """Streamlit follows the system's preference when a light and a dark theme are both given and no base forces
    one (the browser walk checks a dark-preferring browser gets a dark page)."""
    theme = _theme()
    assert "base" not in theme
    assert {"light", "dark"} <= set(theme)
    assert luminance(theme["dark"]["backgroundColor"]) < 0.05 < luminance(theme["light"]["backgroundColor"])


def test_every_theme_option_is_one_streamlit_knows() -> None:
    """A misspelt option is ignored by Streamlit without a word: each must be one of its config options."""
    known = set(streamlit_config._config_options_template)

    def walk(prefix: str, table: dict[str, Any]) -> None:
        for name, value in table.items():
            if isinstance(value, dict):
                walk(f"{prefix}.{name}", value)
            else:
                assert f"{prefix}.{name}" in known, f"{prefix}.{name}"

    walk("theme", _theme())
