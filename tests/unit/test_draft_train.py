"""`completer draft train`'s pure parts: examples, hidden-state layout, resource checks, arguments, export."""

import json
import random
from pathlib import Path

import pytest

from completer.context.prompt import QWEN
from completer.context.tokens import CharEstimateCounter
from completer.draft import examples as ex
from completer.draft import hidden
from completer.draft.heads import HeadError, InitHead, export_head, last_checkpoint, prepare_init_head
from completer.draft.train import (CPU_TINY_BYTES, TrainError, TrainOptions, check_resources, interrupted,
                                   run_until_stopped,
                                   speculators_args, training_bytes)
from completer.engine.methods import is_eagle3_head

PYTHON = '''\
import os


def walk(root):
    """Every file under root."""
    out = []
    for base, dirs, files in os.walk(root):
        for name in files:
            out.append(os.path.join(base, name))
    return out


def count(root):
    total = 0
    for path in walk(root):
        if path.endswith(".py"):
            total += 1
    return total
'''

QWEN2_1_5B = {"hidden_size": 1536, "vocab_size": 151936, "intermediate_size": 8960, "num_hidden_layers": 28}


def literal_build(document: str, cursor: int) -> tuple[str, str]:
    """A prompt builder that shows the document with the cursor marked."""
    return document[:cursor] + "<CURSOR>" + document[cursor:], ""


def test_source_files_skip_tool_folders_small_and_unknown_files(tmp_path):
    files = {"a.py": PYTHON, "pkg/b.go": "package b\n" * 40, ".git/c.py": PYTHON, "node_modules/d.js": PYTHON,
             "tiny.py": "x = 1\n", "notes.bin": "z" * 500, ".venv/lib/e.py": PYTHON}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.py"
    outside.write_text(PYTHON)
    (tmp_path / "link.py").symlink_to(outside)
    assert [str(p.relative_to(tmp_path.resolve())) for p in ex.source_files(tmp_path)] == ["a.py", "pkg/b.go"]


@pytest.mark.parametrize("fraction, low, high", [(0.0, 0, 0), (0.1, 60, 140), (0.5, 440, 560), (1.0, 1000, 1000)])
def test_held_out_is_a_stable_share(fraction, low, high):
    paths = [f"src/m{i}.py" for i in range(1000)]
    kept = [p for p in paths if ex.held_out(p, fraction)]
    assert low <= len(kept) <= high
    assert kept == [p for p in paths if ex.held_out(p, fraction)]


def test_fim_examples_are_holes_of_the_file():
    examples = ex.fim_examples(PYTHON, "python", "a.py", literal_build, random.Random(0), limit=50)
    assert examples and all(e.kind == ex.FIM for e in examples)
    for e in examples:
        before, after = e.prompt.split("<CURSOR>")
        assert before + e.completion + after == PYTHON  # the hole put back gives the file
        assert e.completion.strip()


@pytest.mark.parametrize("language, text", [("python", "def broken(:\n" * 30), ("markdown", PYTHON),
                                            ("python", PYTHON.replace("\n", "\r\n"))])
def test_fim_examples_skip_what_has_no_holes(language, text):
    assert ex.fim_examples(text, language, "x", literal_build, random.Random(0), limit=10) == []


def test_l2r_examples_continue_from_a_line_start():
    examples = ex.l2r_examples(PYTHON, "a.py", literal_build, random.Random(1), limit=5, lines=3)
    assert len(examples) == 5
    for e in examples:
        document = e.prompt.removesuffix("<CURSOR>")
        assert document.endswith("\n") and PYTHON.startswith(document + e.completion)
        assert 1 <= e.completion.count("\n") <= 3 and e.completion.strip()


def test_file_examples_mix_kinds_and_fall_back_to_l2r():
    kinds = [e.kind for e in ex.file_examples(PYTHON, "a.py", "python", literal_build, 0, 6)]
    assert len(kinds) == 6 and kinds.count(ex.FIM) == 3 and kinds.count(ex.L2R) == 3
    text = "\n".join(f"line {i} of notes" for i in range(30))
    assert {e.kind for e in ex.file_examples(text, "a.txt", "text", literal_build, 0, 4)} == {ex.L2R}


def test_prompt_builder_gives_completer_prompts():
    build = ex.prompt_builder(CharEstimateCounter(), QWEN, "python", 256, 0.75)
    cursor = PYTHON.index("total = 0")
    prompt, held = build(PYTHON, cursor)
    assert prompt.startswith("<|fim_prefix|>") and "<|fim_suffix|>" in prompt and "<|fim_middle|>" in prompt
    assert held == ""


@pytest.mark.parametrize("completion, cap, end, ids, mask", [
    ("abc", 8, (9,), [1, 2, 97, 98, 99, 9], [0, 0, 1, 1, 1, 1]),
    ("abcdef", 3, (9,), [1, 2, 97, 98, 99], [0, 0, 1, 1, 1]),  # cut: no end token
    ("ab", 8, (), [1, 2, 97, 98], [0, 0, 1, 1]),
])
def test_tokenize_masks_the_completion(completion, cap, end, ids, mask):
    encode = {"P": [1, 2]}.get
    example = ex.Example("a.py", ex.FIM, "P", completion)
    assert ex.tokenize(example, lambda s: encode(s) or [ord(c) for c in s], cap, end) == (ids, mask)


@pytest.mark.parametrize("layers, expected", [(28, [2, 14, 25]), (8, [2, 4, 5]), (24, [2, 12, 21])])
def test_default_layers_match_vllm(layers, expected):
    assert hidden.default_layers(layers) == expected


@pytest.mark.parametrize("layers", [2, 4, 5])
def test_default_layers_refuse_shallow_targets(layers):
    with pytest.raises(ValueError):
        hidden.default_layers(layers)


def test_token_frequencies_count_masked_tokens_only():
    assert hidden.token_frequencies([([1, 2, 3, 3], [0, 1, 1, 1]), ([3, 4], [1, 0])]) == {2: 1, 3: 3}


def test_missing_hidden_states_include_broken_files(tmp_path):
    import torch
    from safetensors.torch import save_file

    (tmp_path / hidden.HS_DIR).mkdir()
    save_file({"token_ids": torch.tensor([1, 2])}, str(hidden.hs_path(tmp_path, 0)))
    hidden.hs_path(tmp_path, 1).write_bytes(b"cut short")
    assert hidden.missing(tmp_path, 3) == [1, 2]


def test_training_bytes_grow_with_the_step_and_the_vocabulary():
    base = training_bytes(QWEN2_1_5B, 32000, 8192)
    assert training_bytes(QWEN2_1_5B, 32000, 16384) > base > training_bytes(QWEN2_1_5B, 32000, 2048)
    assert training_bytes(QWEN2_1_5B, 64000, 8192) > base
    assert 4 << 30 < base < 60 << 30  # it fits an H200 with room to spare


def _target(tmp_path: Path, weight_bytes: int) -> Path:
    folder = tmp_path / "target"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**QWEN2_1_5B, "num_attention_heads": 12}))
    with open(folder / "model.safetensors", "wb") as f:
        f.truncate(weight_bytes)  # sparse: only its size is read
    return folder


@pytest.mark.parametrize("device, weights, allow_cpu, free, error", [
    ("cuda", 3 << 30, False, 100 << 30, None),
    ("cuda", 3 << 30, False, 2 << 30, "GiB of GPU"),
    ("cpu", 3 << 30, False, 100 << 30, "no CUDA GPU"),
    ("cpu", 3 << 30, True, 100 << 30, None),
    ("cpu", CPU_TINY_BYTES // 2, False, 100 << 30, None),
    ("cpu", CPU_TINY_BYTES // 2, False, 1 << 20, "GiB of RAM"),
])
def test_check_resources(tmp_path, device, weights, allow_cpu, free, error):
    target = _target(tmp_path, weights)
    opts = TrainOptions(code_dir=tmp_path, out=tmp_path / "out", target_dir=target, allow_cpu=allow_cpu)
    if error is None:
        check_resources(device, target, opts, free)
    else:
        with pytest.raises(TrainError, match=error):
            check_resources(device, target, opts, free)


@pytest.mark.parametrize("device, max_steps, present, absent", [
    ("cuda", None, ["--speculator-type=eagle3", "--draft-arch=llama", "--num-layers=1", "--loss-implementation=eager"],
     ["--draft-attn-impl=sdpa", "--max-steps=5"]),
    ("cpu", 5, ["--loss-implementation=eager", "--draft-attn-impl=sdpa", "--max-steps=5"], []),
])
def test_speculators_args(tmp_path, device, max_steps, present, absent):
    opts = TrainOptions(code_dir=tmp_path, out=tmp_path / "out", target_dir=tmp_path / "t", max_steps=max_steps,
                        extra_args=["--muon-lr=0.01"])
    args = speculators_args(opts, tmp_path / "data", [2, 14, 25], device)
    assert all(a in args for a in present) and not any(a in args for a in absent)
    i = args.index("--target-layer-ids")
    assert args[i + 1:i + 4] == ["2", "14", "25"] and args[-1] == "--muon-lr=0.01"


def _head_tensors(embed: bool = True) -> dict:
    import torch

    tensors = {"fc.weight": torch.ones(4, 12), "lm_head.weight": torch.ones(3, 4),
               "d2t": torch.tensor([0, 2, 5]), "t2d": torch.tensor([True, False, True, False, False, True])}
    if embed:
        tensors["embed_tokens.weight"] = torch.zeros(6, 4)
    return tensors


def _epoch(ckpt: Path, name: str, embed_requires_grad: bool = False) -> Path:
    from safetensors.torch import save_file

    folder = ckpt / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"speculators_model_type": "eagle3", "epoch": name,
                                                    "embed_requires_grad": embed_requires_grad}))
    save_file(_head_tensors(), str(folder / "model.safetensors"))
    (folder / "optimizer_state_dict.pt").write_text("big")
    return folder


def _target_with_embedding(folder: Path, vocab_size: int = 6) -> Path:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"vocab_size": vocab_size}))
    save_file({"model.embed_tokens.weight": torch.full((6, 4), 7.0, dtype=torch.bfloat16)},
              str(folder / "model.safetensors"))
    return folder


def test_last_checkpoint_prefers_the_best_epoch(tmp_path):
    assert last_checkpoint(tmp_path) is None
    _epoch(tmp_path, "0"), _epoch(tmp_path, "1"), _epoch(tmp_path, "10")
    assert last_checkpoint(tmp_path).name == "10"
    (tmp_path / "checkpoint_best").symlink_to("1")
    assert last_checkpoint(tmp_path).name == "1"


def test_a_sigterm_ends_the_trainer_not_the_run():
    import os
    import signal

    def stopped_trainer():
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the trainer went on after SIGTERM")

    def failing_trainer():  # as when the same SIGTERM killed its DataLoader workers
        raise RuntimeError("DataLoader worker (pid 2724) is killed by signal: Terminated.")

    before = signal.getsignal(signal.SIGTERM)
    assert run_until_stopped(stopped_trainer) == ("signal", "SIGTERM")
    assert run_until_stopped(failing_trainer) == (
        "error", "RuntimeError: DataLoader worker (pid 2724) is killed by signal: Terminated.")
    assert run_until_stopped(lambda: None) is None
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_sigterm_inside_speculators_trainer_is_seen_from_its_interrupted_checkpoint(tmp_path):
    """speculators' own handler catches the signal while it trains, saves checkpoints/interrupted and
    returns as if finished: the run tells the stop from that checkpoint."""
    import os
    import signal
    import time

    from speculators.train.graceful_shutdown import with_graceful_shutdown

    class Trainer:  # what speculators' decorator needs of its Trainer
        class checkpointer:
            path = tmp_path / "checkpoints"

        def maybe_save_checkpoint(self, label):
            (self.checkpointer.path / label).mkdir(parents=True)

        @with_graceful_shutdown()
        def run_training(self):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
            raise AssertionError("the trainer went on after SIGTERM")

    since = time.time() - 1
    assert not interrupted(tmp_path / "checkpoints", since)
    assert run_until_stopped(Trainer().run_training) is None
    assert interrupted(tmp_path / "checkpoints", since)
    assert not interrupted(tmp_path / "checkpoints", time.time() + 60)  # one from an earlier call


@pytest.mark.parametrize("embed_requires_grad, embed_kept", [(False, False), (True, True)])
def test_export_head_copies_what_vllm_reads(tmp_path, embed_requires_grad, embed_kept):
    from safetensors.torch import load_file

    export_head(_epoch(tmp_path / "ckpt", "2", embed_requires_grad), tmp_path / "head")
    assert sorted(p.name for p in (tmp_path / "head").iterdir()) == ["config.json", "model.safetensors"]
    assert is_eagle3_head(str(tmp_path / "head"))
    kept = load_file(str(tmp_path / "head" / "model.safetensors"))
    assert ("embed_tokens.weight" in kept) == embed_kept  # a frozen copy of the target's stays out
    assert {"fc.weight", "lm_head.weight", "d2t", "t2d"} <= kept.keys()


def test_prepare_init_head_restores_the_embedding_and_keeps_the_vocabulary(tmp_path):
    import numpy as np
    import torch
    from safetensors.torch import load_file

    export_head(_epoch(tmp_path / "ckpt", "0"), tmp_path / "head")
    target = _target_with_embedding(tmp_path / "target")
    init = prepare_init_head(tmp_path / "head", target, tmp_path / "run" / "init-head")
    assert init.draft_vocab_size == 3
    tensors = load_file(str(init.folder / "model.safetensors"))
    assert tensors["embed_tokens.weight"].dtype == torch.float32 and tensors["embed_tokens.weight"][0, 0] == 7
    assert np.load(init.d2t).tolist() == [0, 2, 5]
    assert np.load(init.t2d).tolist() == [True, False, True, False, False, True]
    config = json.loads((init.folder / "config.json").read_text())
    assert config["speculators_config"]["verifier"]["name_or_path"] == str(target)


@pytest.mark.parametrize("files", [{}, {"config.json": '{"speculators_model_type": "eagle3"}'},
                                   {"config.json": "{}", "model.safetensors": "not weights"}])
def test_prepare_init_head_refuses_what_is_not_a_head(tmp_path, files):
    (tmp_path / "head").mkdir()
    for name, text in files.items():
        (tmp_path / "head" / name).write_text(text)
    with pytest.raises(HeadError, match="--init-head"):
        prepare_init_head(tmp_path / "head", _target_with_embedding(tmp_path / "target"), tmp_path / "init")


def test_prepare_init_head_refuses_a_head_for_another_vocabulary(tmp_path):
    export_head(_epoch(tmp_path / "ckpt", "0"), tmp_path / "head")
    with pytest.raises(HeadError, match="vocabulary of 6 tokens"):
        prepare_init_head(tmp_path / "head", _target_with_embedding(tmp_path / "target", 151936), tmp_path / "init")


def test_speculators_args_start_from_an_init_head(tmp_path):
    init = InitHead(tmp_path / "init", tmp_path / "init" / "d2t.npy", tmp_path / "init" / "t2d.npy", 3)
    opts = TrainOptions(code_dir=tmp_path, out=tmp_path / "out", target_dir=tmp_path / "t")
    args = speculators_args(opts, tmp_path / "data", [2, 14, 25], "cuda", init)
    assert f"--from-pretrained={init.folder}" in args and f"--d2t-path={init.d2t}" in args
    assert "--draft-vocab-size=3" in args
    assert not any(a.startswith(("--num-layers", "--draft-arch", "--full-attention")) for a in args)  # refused beside it
    resumed = speculators_args(opts, tmp_path / "data", [2, 14, 25], "cuda", init, resumed=True)
    assert f"--d2t-path={init.d2t}" in resumed and "--draft-vocab-size=3" in resumed  # its vocabulary stays
    assert not any(a.startswith("--from-pretrained") for a in resumed) and "--num-layers=1" in resumed


@pytest.mark.parametrize("tokens, layers, hidden_size, expected", [(1000, 3, 1536, 12_288_000), (0, 3, 64, 0)])
def test_stored_bytes(tokens, layers, hidden_size, expected):
    assert hidden.stored_bytes(tokens, layers, hidden_size) == expected


def test_target_completions_replace_the_files_text(tmp_path):
    from types import SimpleNamespace

    from completer.engine import regenerate

    rows = [([1, 2, 3, 4], [0, 0, 1, 1]), ([5, 6, 7], [0, 1, 1]), ([8, 9], [0, 1])]
    assert [regenerate.prompt_of(r) for r in rows] == [[1, 2], [5], [8]]
    assert regenerate.with_completions(rows, [[10, 11, 12], [], [13]]) == [
        ([1, 2, 10, 11, 12], [0, 0, 1, 1, 1]), ([8, 13], [0, 1])]
    with pytest.raises(ValueError):
        regenerate.with_completions(rows, [[1]])

    def fake_run(cmd):
        request = json.loads(Path(cmd[-2]).read_text())
        assert request["prompts"] == [[1, 2], [5], [8]] and request["stop_ids"] == [99]
        Path(cmd[-1]).write_text(json.dumps({"completions": [[7]] * 3}))
        return SimpleNamespace(returncode=0)

    assert regenerate.generate(tmp_path, rows, 16, [99], tmp_path / "w", run=fake_run) == [[7], [7], [7]]
    with pytest.raises(RuntimeError):
        regenerate.generate(tmp_path, rows, 16, [99], tmp_path / "w", run=lambda cmd: SimpleNamespace(returncode=3))


@pytest.mark.parametrize("loss_on, expected", [
    ("completion", [([1, 2, 3], [0, 1, 1]), ([4], [1])]),
    ("all", [([1, 2, 3], [1, 1, 1]), ([4], [1])]),
])
def test_with_loss_on_picks_the_tokens_the_head_learns_at(loss_on, expected):
    from completer.draft.train import with_loss_on

    assert with_loss_on([([1, 2, 3], [0, 1, 1]), ([4], [1])], loss_on) == expected


def test_with_loss_on_refuses_an_unknown_choice():
    from completer.draft.train import with_loss_on

    with pytest.raises(ValueError, match="loss_on"):
        with_loss_on([], "prompt")


def test_epoch_curve_reads_the_epochs_that_wrote_validation_figures(tmp_path):
    from completer.draft.heads import epoch_curve

    for epoch, metrics in (("0", {"loss_epoch": 3.0, "full_acc_0_epoch": 0.2, "full_acc_1_epoch": 0.05}),
                           ("2", {"loss_epoch": 2.0, "full_acc_0_epoch": 0.5, "full_acc_1_epoch": 0.25,
                                  "full_acc_2_epoch": 0.125}),
                           ("10", {"loss_epoch": 1.5, "full_acc_0_epoch": 0.6})):
        (tmp_path / epoch).mkdir()
        (tmp_path / epoch / "val_metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "1").mkdir()  # no validation improvement: no figures
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / "val_metrics.json").write_text("{not json")
    (tmp_path / "checkpoint_best").mkdir()
    curve = epoch_curve(tmp_path)
    assert [(c["epoch"], c["val_loss"], c["full_acc"], c["acceptance_length"]) for c in curve] == [
        (0, 3.0, [0.2, 0.05], 1.25), (2, 2.0, [0.5, 0.25, 0.125], 1.875), (10, 1.5, [0.6], 1.6)]
    assert all(c["written"].endswith("Z") for c in curve)
