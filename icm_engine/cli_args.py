"""The `icm` command's arguments: the parser, and the task and backend its arguments name."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from .anchor import ANCHORS
from .baselines import METHODS
from .defaults import DOC as DEFAULTS_DOC
from .orientation import CHOICES as ORIENTATIONS
from .presets import PRESETS, get_task
from .scoring import CONTEXTS, DEFAULT_FOLDS, DEMO_ORDERS, READOUTS, SCOPES
from .search import INITS, MODES, SCHEDULES, SEMANTICS, ICMConfig


def _task_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, choices=sorted(PRESETS), help="task preset")
    p.add_argument("--template", help="prompt template over the file's fields (claims), e.g. "
                   "'Claim: {choice}\\nI think this claim is'")
    p.add_argument("--consistency", help="none | unique | asymmetric | key:FIELD (default: the preset's)")
    p.add_argument("--label-words", nargs=2, metavar=("TRUE", "FALSE"), help="default ' True' ' False'")
    p.add_argument("--channel-prefix", help="channel readout prefix template with {verbalizer}")
    p.add_argument("--channel-target", help="channel readout target template")
    p.add_argument("--likelihood-prefix", help="the likelihood anchor's label-free prefix before the channel "
                   "target (default 'Question: {question}\\nAnswer:')")
    p.add_argument("--readout", choices=READOUTS, default=None,
                   help="verdict: next-token label words; channel: likelihood of the claim after each label's "
                   "verbalizer; split: likelihood of the claim given each label's examples (default: the "
                   f"preset's, chosen for the packaged model on development data: {DEFAULTS_DOC})")
    p.add_argument("--context", choices=CONTEXTS, default=None,
                   help="demonstrations a target sees: all other labeled examples (paper) or only other groups "
                        "(default: the preset's)")
    p.add_argument("--centre", choices=SCOPES, default=None,
                   help="what calibration subtracts: the batch's mean log-odds, or each consistency group's (a claim "
                        "counts by how it compares with its group mates; default: the preset's)")
    p.add_argument("--folds", type=int, default=DEFAULT_FOLDS,
                   help="with --context other-folds: how many folds the batch's consistency groups are dealt into "
                        "(each example's context is the labeled examples of the other folds)")
    p.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=None,
                   help="subtract the batch's mean log-odds from every score (contextual calibration; on by "
                        "default: uncalibrated, the label words' bias can make one class the most predictable)")
    p.add_argument("--limit", type=int, help="keep the first N examples (whole consistency groups)")


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
    d = ICMConfig()
    hp = lab.add_argument_group("hyperparameters (paper defaults)")
    hp.add_argument("--alpha", type=float, default=d.alpha)
    hp.add_argument("--initial-temperature", type=float, default=d.initial_temperature)
    hp.add_argument("--final-temperature", type=float, default=d.final_temperature)
    hp.add_argument("--cooling", type=float, default=d.cooling, help="beta of T0/(1+beta ln n)")
    hp.add_argument("--schedule", choices=SCHEDULES, default=None, help="default: paper (reference: code)")
    hp.add_argument("--num-seed", type=int, default=d.num_seed, help="K random initial labels")
    hp.add_argument("--iterations", type=int, default=None,
                    help="search iterations per batch (default: 12 per example of a batch, at most the paper's 3000)")
    hp.add_argument("--fix-steps", type=int, default=d.fix_steps, help="ConsistencyFix rounds M")
    hp.add_argument("--boost", type=float, default=d.boost, help="sampling weight of unlabeled group mates")
    hp.add_argument("--batch-size", type=int, default=None,
                    help="examples per batch (default: the paper's 256, or all of them when fewer)")
    hp.add_argument("--mode", choices=[*MODES, "batched"], default=d.mode,
                    help="fast: shared prefixes and cached scores; reference: the official code's cost")
    hp.add_argument("--context-cap", type=int, default=None,
                    help="approximation: at most N demonstrations per target, a fixed random choice per target")
    hp.add_argument("--init", choices=INITS, default=d.init,
                    help="initial K labels: random (paper) or balanced by zero-shot ranking")
    hp.add_argument("--semantics", choices=SEMANTICS, default=None,
                    help="the search's choices: paper (fast's default) or code (the official code's; reference's)")
    hp.add_argument("--demo-order", choices=DEMO_ORDERS, default=d.demo_order,
                    help="fast mode: demonstrations by position (the official code) or in the order they were "
                         "labeled (a new label joins each prompt at its end, so earlier prompts' KV is reused)")
    hp.add_argument("--anchor", choices=ANCHORS, default=None,
                    help="the claim-likelihood anchor as a term of U: agreeing (the paper semantics' default: it joins "
                         "halfway through each batch if it agrees with the labels found so far), likelihood (the K "
                         "seed labels follow it and it counts from the start) or none (the official code's U and "
                         "--semantics code's default)")
    hp.add_argument("--anchor-weight", type=float, default=d.anchor_weight,
                    help="the anchor's weight in U beside mutual predictability, each in its own spread (default 1; "
                         "0: the anchor only seeds)")
    hp.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                    help="measure mutual predictability in units of the readout's spread, so alpha and the "
                         "temperatures mean the same under every readout (default: on for the paper's semantics, "
                         "off for the code's)")
    hp.add_argument("--complete", action=argparse.BooleanOptionalAction, default=d.complete,
                    help="after the search, label every example it left unlabeled with the model's prediction given "
                         "the searched labels, within the consistency rule (default on; --no-complete keeps the "
                         "partial labeling)")
    hp.add_argument("--orient", choices=ORIENTATIONS, default=d.orient,
                    help="what names the two classes after the search: auto (the likelihood and zero-shot signals, "
                         "chosen on development data), one signal, or none (the search's own naming)")
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
    base.add_argument("--shots", type=int, help="cap the demonstrations per prompt (default: the whole batch)")
    base.add_argument("--rounds", type=int, default=3, help="bootstrap rounds")
    base.add_argument("--batch-size", type=int, default=256)

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
