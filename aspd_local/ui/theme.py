"""Look of the page: a theme on system fonts (nothing fetched from the internet) and the CSS of the
branch panels and statistics strip."""

from __future__ import annotations


def theme():
    import gradio as gr

    return gr.themes.Default(font=[gr.themes.Font("system-ui"), "sans-serif"],
                             font_mono=[gr.themes.Font("ui-monospace"), "monospace"])


CSS = """
#aspd-branches { display: flex; flex-direction: row; gap: 10px; align-items: stretch; min-height: 3em; }
#aspd-branches.aspd-idle { color: var(--body-text-color-subdued); font-size: 0.9em; }
#aspd-branches.aspd-idle p { margin: 0.4em 0; }
.aspd-branch { flex: 1 1 0; min-width: 0; border: 1px solid var(--border-color-primary);
               border-radius: 8px; padding: 6px 10px; background: var(--background-fill-secondary); }
.aspd-branch.aspd-live { border-color: var(--color-accent); }
.aspd-branch-title { font-weight: 600; margin-bottom: 4px; display: flex; justify-content: space-between; }
.aspd-branch-mark { color: var(--body-text-color-subdued); font-weight: 400; }
.aspd-branch-text { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 0.92em;
                    max-height: 18em; overflow-y: auto; }
#aspd-stats { display: flex; flex-wrap: wrap; gap: 14px; font-size: 0.88em;
              color: var(--body-text-color-subdued); padding: 2px 2px; }
#aspd-stats b { color: var(--body-text-color); font-variant-numeric: tabular-nums; }
"""
