"""tools/make_models.py picks the zoo models to retrain: `make models MODEL=...` trains one at a time."""
import make_models  # tools/ is on sys.path (tests/conftest.py)
import pytest


def test_selection_by_short_or_full_name_keeps_zoo_order():
    assert make_models.selected([]) == ["gpt", "clip", "vlm", "whisper", "ctc", "codec", "tts", "video",
                                           "tubelet", "vqvae", "chameleon", "ldm", "transfusion", "vlm-draws",
                                           "two-encoders", "crawl-clips", "vlm-curriculum", "vlm-pope",
                                           "vlm-checkpoints", "vla", "gui"]
    # the drawing VLM starts from the VLM and its card compares it with the Chameleon
    assert make_models.selected(["tiny-vlm-draws-shapes", "chameleon", "vlm"]) == ["vlm", "chameleon", "vlm-draws"]
    assert make_models.selected(["tiny-two-encoders-shapes", "vqvae", "vlm"]) == ["vlm", "vqvae", "two-encoders"]
    # the crawl CLIPs need the zoo CLIP (its score) and the zoo VLM (the recaptions)
    assert make_models.selected(["tiny-crawl-clips-shapes", "vlm", "clip"]) == ["clip", "vlm", "crawl-clips"]
    # the curriculum's data is the crawl pipeline's, recaptions included
    assert make_models.selected(["tiny-vlm-curriculum-shapes", "vlm"]) == ["vlm", "vlm-curriculum"]
    assert make_models.selected(["tiny-transfusion-shapes", "vqvae"]) == ["vqvae", "transfusion"]
    assert make_models.selected(["tiny-ldm-shapes", "vqvae"]) == ["vqvae", "ldm"]  # its latents first
    assert make_models.selected(["tiny-chameleon-shapes", "vqvae"]) == ["vqvae", "chameleon"]  # tokenizer first
    assert make_models.selected(["tiny-tubelet-vlm-shapes", "video"]) == ["video", "tubelet"]
    assert make_models.selected(["tiny-clip-shapes"]) == ["clip"]
    assert make_models.selected(["tiny-vla-shapes", "vlm"]) == ["vlm", "vla"]  # the VLA starts from the zoo VLM
    assert make_models.selected(["tiny-gui-shapes", "vlm"]) == ["vlm", "gui"]  # so does the GUI agent
    assert make_models.selected(["vlm", "gpt"]) == ["gpt", "vlm"]  # the VLM needs the other two first
    assert make_models.selected(["tiny-whisper-shapes"]) == ["whisper"]
    with pytest.raises(SystemExit, match="unknown model tiny-whisper"):
        make_models.selected(["tiny-whisper"])
