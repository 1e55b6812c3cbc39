"""``text_encoder``: std_msgs/String (operator descriptions) -> text embedding.

Input (remapped by graph.py): ``text``. std_msgs/String has no header, so the embedding's
stamp is the receive time on the node clock (sim time under ``use_sim_time``).
Output: ``aecf/embedding/text``. Empty / whitespace-only strings are dropped (``empty_text``);
see ``aecf_ros.runtime.inputs.MODALITY_INPUTS["text"]``.
"""
from __future__ import annotations

from aecf_ros.nodes.encoder_base import EncoderNode, encoder_main


class TextEncoderNode(EncoderNode):
    MODALITY = "text"
    SPEC_NAME = "text_encoder"

    def warm_up_input(self):
        return "a car and a person near the road"


NODE_CLASS = TextEncoderNode


def main(args=None) -> int:
    return encoder_main(TextEncoderNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
