"""axe-core (tests/browser/axe, pinned, installed by `make test`) run in a page by Playwright:
the WCAG 2.0/2.1/2.2 A and AA rules, and a readable account of what they found.

The pages have a strict CSP (script-src 'self'), so axe can only be injected into a page of a
context made with bypass_csp=True; only the accessibility scans use such contexts."""
from __future__ import annotations

from pathlib import Path

AXE_DIR = Path(__file__).resolve().parent / "axe"
AXE_SCRIPT = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
# Options for browser.new_context: axe needs the page's CSP bypassed to be injected.
SCAN_CONTEXT = {"bypass_csp": True}


class AxeMissing(AssertionError):
    """axe-core is not installed: an accessibility test fails (never skips) with this."""


def axe_script() -> Path:
    if not AXE_SCRIPT.exists():
        raise AxeMissing(f"{AXE_SCRIPT} is missing: install it with `make test` or "
                         f"`npm ci --prefix {AXE_DIR.relative_to(AXE_DIR.parents[2])}`")
    return AXE_SCRIPT


def scan(page) -> list[dict]:
    """axe's violations for the page as it is now (WCAG A and AA, 2.0 to 2.2)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(axe_script()))
    return page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
            return result.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.map((n) => n.target.join(" ")),
            }));
        }""", WCAG_TAGS)


def describe(violations: list[dict]) -> str:
    """One line per rule: its id, impact, what it asks, and the selectors of the elements."""
    return "\n".join(f"{v['id']} ({v['impact']}): {v['help']} -> {', '.join(v['targets'])}" for v in violations)


def assert_no_violations(page, state: str) -> None:
    violations = scan(page)
    assert not violations, f"axe found {len(violations)} WCAG A/AA violation(s) on {state}:\n{describe(violations)}"
