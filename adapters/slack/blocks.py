"""The Block Kit of conversation controls: Slack's feedback buttons (a `context_actions`
block, as docs.slack.dev/reference/block-kit/blocks/context-actions-block shows) and the
Regenerate and Continue buttons beside them."""

from __future__ import annotations

from typing import Any

from bot.controls import AnswerControls, Control

FEEDBACK_ACTION = "claude_feedback"
REGENERATE_ACTION = "claude_regenerate"
CONTINUE_ACTION = "claude_continue"


def control_blocks(controls: AnswerControls) -> list[dict[str, Any]]:
    """The blocks under an answer's final message: feedback buttons, then its other controls."""
    answer = controls.answer_id
    blocks: list[dict[str, Any]] = []
    if Control.FEEDBACK in controls.controls:
        blocks.append(
            {
                "type": "context_actions",
                "block_id": f"claude_feedback_{answer}",
                "elements": [
                    {
                        "type": "feedback_buttons",
                        "action_id": FEEDBACK_ACTION,
                        "positive_button": {
                            "text": {"type": "plain_text", "text": "Good answer"},
                            "accessibility_label": "Mark this answer as good",
                            "value": f"up:{answer}",
                        },
                        "negative_button": {
                            "text": {"type": "plain_text", "text": "Bad answer"},
                            "accessibility_label": "Mark this answer as bad",
                            "value": f"down:{answer}",
                        },
                    }
                ],
            }
        )
    buttons = [
        {"type": "button", "action_id": action, "text": {"type": "plain_text", "text": label}, "value": str(answer)}
        for control, action, label in (
            (Control.REGENERATE, REGENERATE_ACTION, "Regenerate"),
            (Control.CONTINUE, CONTINUE_ACTION, "Continue"),
        )
        if control in controls.controls
    ]
    if buttons:
        blocks.append({"type": "actions", "block_id": f"claude_controls_{answer}", "elements": buttons})
    return blocks
