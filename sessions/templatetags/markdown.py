"""``{{ comment.body|markdown }}``: a comment's Markdown as safe HTML.

CommonMark through markdown-it-py with raw HTML off (``<script>`` is shown as text, never parsed),
images off (a comment must not make the browser fetch anything: the CSP's img-src is 'self'
anyway), and links only to http, https and mailto, each with ``rel="nofollow noopener noreferrer"``.
markdown-it escapes every text node itself, so the result can be marked safe.
"""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

register = template.Library()

_SCHEMES = ("http://", "https://", "mailto:")


def _safe_link(url: str) -> bool:
    lowered = url.strip().lower()
    return lowered.startswith(_SCHEMES) or lowered.startswith(("/", "#"))


def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.disable(["image", "html_block", "html_inline"])
    md.validateLink = _safe_link

    def link_open(self: object, tokens: list, idx: int, options: dict, env: dict) -> str:
        tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
        return self.renderToken(tokens, idx, options, env)

    md.add_render_rule("link_open", link_open)
    return md


_MD = _renderer()


@register.filter(name="markdown")
def render_markdown(text: str) -> SafeString:
    """Markdown → HTML with no raw HTML, no images, safe links (see the module docstring)."""
    return mark_safe(_MD.render(text or ""))
