"""The `icm` command's arguments: the parser, and the task and backend its arguments name."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from typing import Any

from .baselines import METHODS
from .presets import PRESETS, get_task
from .run_settings import BASELINE_SETTINGS, ICM_SETTINGS, RUN_SETTINGS
from .scoring import DEMO_ORDERS
from .search import MODE_ALIASES, SEMANTICS, ICMConfig
from .setting import Setting

# Old names an option still takes (the engine maps them: --mode batched is fast).
OPTION_ALIASES = {"mode": tuple(MODE_ALIASES)}


def _task_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, choices=sorted(PRESETS), help="task preset")
    p.add_argument("--template", help="prompt template over the file's fields (claims), e.g. "
                   "'Claim: {choice}\\nI think this claim is'")
    p.add_argument("--consistency", help="none | unique | asymmetric | key:FIELD (default: the preset's)")
    p.add_argument("--label-words", nargs=2, metavar=("TRUE", "FALSE"), help="default ' True' ' False'")
    p.add_argument("--channel-prefix", help="channel readout prefix template with {verbalizer}")
    p.add_argument("--channel-target", help="channel readout target template")
    p.add_argument("--likelihood-prefix", help="the likelihood anchor's label-free prefix before the channel "
                   "target (default: the preset's, 'Claim:' for claims and truthfulqa)")
    for name in READOUT_SETTINGS:
        _setting_option(p, RUN_SETTINGS[name])
    p.add_argument("--limit", type=int, help="keep the first N examples (whole consistency groups)")


# The readout settings every command that reads the model takes; the rest are ICM's or the baselines' own.
READOUT_SETTINGS = ("readout", "context", "centre", "folds", "calibrate")


def _setting_option(p: argparse.ArgumentParser | argparse._ArgumentGroup, setting: Setting) -> None:
    """One run setting as an option, described as the engine describes it (setting.py). Left out, it is None:
    `settings_for` fills it in from the preset, the data's size or the config's default."""
    shown = setting.empty or f"{setting.default}"
    kwargs: dict[str, Any] = {"default": None, "help": f"{setting.help} (default: {shown})".replace("%", "%%")}
    if setting.kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        kwargs["type"] = setting.kind
        if setting.choices:
            kwargs["choices"] = [*setting.choices, *OPTION_ALIASES.get(setting.name, ())]
    p.add_argument(setting.flag, **kwargs)


def given_settings(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The settings among `names` the command line gave (the others are left to `settings_for`)."""
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def _backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="transformers", choices=["transformers", "openai", "vllm"])
    p.add_argument("--model", default=None, help="packaged model name, local folder or .gguf (default gemma3-270m)")
    p.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"],
                   help="transformers (auto: bfloat16 where the CPU or GPU has native bf16, else float32) and vllm "
                        "(auto: the model's own) backends")
    p.add_argument("--device", default=None,
                   help="transformers backend: torch device, e.g. cuda or cuda:1 (default $ICM_DEVICE, else cpu)")
    p.add_argument("--strategy", default=None, choices=["auto", "store", "wide"],
                   help="transformers backend: how a call is cut into forward passes (auto: by device, store on "
                        "the CPU, wide on an accelerator; default $ICM_STRATEGY, else auto; docs/engine.md)")
    p.add_argument("--base-url", default=None, help="openai backend: server URL (default $ICM_OPENAI_BASE_URL)")
    p.add_argument("--share-continuations", action=argparse.BooleanOptionalAction, default=None,
                   help="transformers backend: continuation readouts (split, channel) resume their contexts from the "
                        "prefix store (exact; on by default; --no-share-continuations computes every token, "
                        "docs/engine.md)")
    p.add_argument("--seed", type=int, default=0)


def _io_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="labels JSONL: one {id, label, score} per example, input order")
    p.add_argument("--report", help="report JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _comma_list(choices: Sequence[str], noun: str):
    """An argparse type: a comma-separated list of some of `choices`."""

    def parse(text: str) -> list[str]:
        items = [x.strip() for x in text.split(",") if x.strip()]
        if not items or any(x not in choices for x in items):
            raise argparse.ArgumentTypeError(f"{noun} are {', '.join(choices)} (comma-separated)")
        return items

    return parse


_orders = _comma_list(DEMO_ORDERS, "demonstration orders")
_modes = _comma_list(("reference", "fast"), "modes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="icm", description="Internal Coherence Maximization: label data "
                                     "with a pretrained language model and no human labels.")
    sub = parser.add_subparsers(dest="command", required=True)

    lab = sub.add_parser("label", help="label a dataset with ICM")
    lab.add_argument("input")
    _task_args(lab)
    _backend_args(lab)
    _io_args(lab)
    hp = lab.add_argument_group("ICM settings (left out: the task preset's choice, the data's size, the paper's; "
                                "docs/cli.md)")
    for setting in ICM_SETTINGS.values():
        if setting.cli and setting.name not in READOUT_SETTINGS:
            _setting_option(hp, setting)
    lab.add_argument("--checkpoint", help="save the search state here (between iterations, at most every 10 s); "
                                          "resume from it if present")

    bench = sub.add_parser("bench", help="run reference and fast on the same data and seeds; print what each cost "
                           "(readout default: verdict over all others, uncalibrated, as the official code)")
    bench.add_argument("input")
    _task_args(bench)
    _backend_args(bench)
    bench.set_defaults(limit=64)
    bench.add_argument("--iterations", type=int, default=64, help="search iterations per batch")
    bench.add_argument("--seeds", default=None, help="comma-separated seeds (default: --seed)")
    d = ICMConfig()
    bench.add_argument("--num-seed", type=int, default=d.num_seed)
    bench.add_argument("--batch-size", type=int, default=d.batch_size)
    bench.add_argument("--context-cap", type=int, default=None,
                       help="approximation, fast mode only: at most N demonstrations per target")
    bench.add_argument("--demo-order", default=d.demo_order, type=_orders,
                       help="fast mode's demonstration order(s), comma-separated (position,labeled): each runs "
                            "against the same reference run (which keeps the official code's position order)")
    bench.add_argument("--semantics", choices=SEMANTICS, default="code",
                       help="fast mode's search choices: code (default: the reference's own, so only the scorer "
                            "differs) or paper (what icm label runs by default)")
    bench.add_argument("--modes", default="reference,fast", type=_modes,
                       help="which modes to run, comma-separated (default both; one alone: no ratios)")
    bench.add_argument("--report", help="write the final JSON here too")
    bench.add_argument("--limit-tokens", type=int, default=4096,
                       help="measure the backend's forward-pass limit on this many tokens of 512-token prompts "
                            "(the best of two passes); 0: skip it")
    bench.add_argument("--checkpoint-dir",
                       help="checkpoint each run here (between iterations, at most every 10 s) and keep it here "
                            "when it finishes; the same command run again skips finished runs and resumes an "
                            "interrupted one from its last iteration")

    summary = sub.add_parser("bench-summary", help="combine icm bench reports (e.g. one seed each) into one summary")
    summary.add_argument("reports", nargs="+", help="JSON files written by icm bench --report")

    base = sub.add_parser("baseline", help="run a baseline labeler")
    base.add_argument("input")
    base.add_argument("--method", required=True, choices=METHODS,
                      help="likelihood: zero-shot claim likelihood after a label-free prefix, centred per group")
    _task_args(base)
    _backend_args(base)
    _io_args(base)
    for setting in BASELINE_SETTINGS.values():
        if setting.cli and setting.name not in READOUT_SETTINGS:
            _setting_option(base, setting)

    ev = sub.add_parser("evaluate", help="test-set accuracy of many-shot prompting with a label set")
    ev.add_argument("test")
    ev.add_argument("--train", required=True)
    ev.add_argument("--labels", required=True, help="labels JSONL/CSV (id, label) for the training file")
    _task_args(ev)
    _backend_args(ev)
    ev.add_argument("--shots", type=int, help="cap the demonstrations (default: every labeled example)")
    ev.add_argument("--report", help="report JSON")
    ev.add_argument("--quiet", action="store_true")
    return parser


def make_task(args: argparse.Namespace):
    """The task (prompt preset and overrides) the arguments name."""
    return get_task(args.task, template=args.template, consistency=args.consistency,
                    label_words=args.label_words, channel_prefix=args.channel_prefix,
                    channel_target=args.channel_target, likelihood_prefix=args.likelihood_prefix)


def make_backend(args: argparse.Namespace):
    """The backend the arguments name, with the options that backend takes (ValueError for one it does not)."""
    from .backends import get_backend

    options: dict[str, Any] = {}
    if args.device and args.backend != "transformers":
        raise ValueError(f"--device is for the transformers backend; {args.backend} places the model itself")
    if args.strategy and args.backend != "transformers":
        raise ValueError(f"--strategy is for the transformers backend, not {args.backend}")
    if args.backend in ("transformers", "vllm"):
        options["dtype"] = args.dtype
        if args.device:
            options["device"] = args.device
        if args.strategy:
            options["strategy"] = args.strategy
    elif args.backend == "openai" and args.base_url:
        options["base_url"] = args.base_url
    if args.share_continuations is not None:
        if args.backend != "transformers":
            raise ValueError("--share-continuations is for the transformers backend")
        options["share_continuations"] = args.share_continuations
    return get_backend(args.backend, args.model, **options)
