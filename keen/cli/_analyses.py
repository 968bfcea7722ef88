"""``keen count|sum|...|funnel|multi_analysis``: one subcommand per analysis of the API.

Each subcommand turns its flags into the arguments of the ``KeenClient`` method of the same name
(the library checks and encodes them; nothing is sent when they are wrong) and prints the answer
(see :mod:`keen.cli._output`). Analyses need the read key.
"""

from __future__ import annotations

import argparse
from typing import Any

from keen.cli import _args, _output
from keen.cli._settings import Settings, build_client

__all__ = ["ANALYSES", "register", "run_analysis"]

#: analysis -> (one-line help, takes a target property)
ANALYSES: dict[str, tuple[str, bool]] = {
    "count": ("count the events that match", False),
    "count_unique": ("count the distinct values of a property", True),
    "sum": ("add up a property", True),
    "average": ("the mean of a property", True),
    "median": ("the median of a property", True),
    "percentile": ("a percentile of a property (--percentile)", True),
    "minimum": ("the smallest value of a property", True),
    "maximum": ("the largest value of a property", True),
    "standard_deviation": ("the (population) standard deviation of a property", True),
    "select_unique": ("the distinct values of a property", True),
    "extraction": ("the matching events themselves", False),
    "funnel": ("how many actors went through each step (--steps)", False),
    "multi_analysis": ("several analyses of one collection at once (--analyses)", False),
}

_EXAMPLES = {
    "count": "keen count purchases --timeframe this_7_days --group-by item.id "
             "--interval daily --filter 'price gte 10'",
    "percentile": "keen percentile purchases --target-property price --percentile 95 "
                  "--timeframe previous_month",
    "extraction": "keen extraction purchases --timeframe today --latest 10 "
                  "--property-name price --property-name item.id",
    "funnel": "keen funnel --timeframe this_30_days --steps steps.json\n  steps.json: "
              '[{"event_collection": "sign_ups", "actor_property": "user.id"}, '
              '{"event_collection": "purchases", "actor_property": "user.id"}]',
    "multi_analysis": "keen multi_analysis purchases --timeframe this_7_days --analyses "
                      "'{\"total\": {\"analysis_type\": \"sum\", \"target_property\": "
                      "\"price\"}, \"n\": {\"analysis_type\": \"count\"}}'",
}


def _percentile(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100, not {text!r}")
    return value


def add_scope_arguments(parser: argparse.ArgumentParser, *, timeframe_required: bool) -> None:
    """--timeframe, --timezone and --filter (analyses, export, delete-events)."""
    parser.add_argument("--timeframe", required=timeframe_required,
                        help="this_7_days, previous_month..., START..END (ISO-8601), or "
                             '{"start": ..., "end": ...}')
    parser.add_argument("--timezone", help="a zone name (US/Pacific) or an offset in seconds")
    parser.add_argument("--filter", dest="filters", action="append", metavar="FILTER",
                        help="'PROPERTY OPERATOR VALUE' (e.g. 'price gte 10'; VALUE is JSON "
                             "when it parses, text otherwise) or a JSON filter; repeatable, "
                             "all must match")


def _add_group_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interval", help="daily, hourly, weekly, every_6_hours...")
    parser.add_argument("--group-by", action="append", metavar="PROPERTY",
                        help="group the result by this property; repeatable")
    parser.add_argument("--order-by", action="append", metavar="PROPERTY[:asc|:desc]",
                        help="order groups by 'result' or a group property; repeatable")
    parser.add_argument("--limit", type=_args.positive_int, help="keep this many groups (needs "
                        "--order-by)")


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    for analysis, (summary, targeted) in ANALYSES.items():
        aliases = [analysis.replace("_", "-")] if "_" in analysis else []
        example = _EXAMPLES.get(analysis)
        parser = subparsers.add_parser(
            analysis, aliases=aliases, parents=parents, help=summary,
            description=summary[0].upper() + summary[1:] + " (read key).",
            epilog=f"example:\n  {example}" if example else None,
            formatter_class=argparse.RawDescriptionHelpFormatter)
        if analysis != "funnel":
            parser.add_argument("collection", help="the event collection")
        if targeted:
            parser.add_argument("--target-property", required=True, metavar="PROPERTY",
                                help="the property the analysis runs on")
        if analysis == "percentile":
            parser.add_argument("--percentile", type=_percentile, required=True,
                                help="0 to 100, e.g. 99.9")
        if analysis == "funnel":
            parser.add_argument("--steps", required=True, metavar="JSON|FILE",
                                help="the list of steps, as JSON or a JSON file ('-': stdin)")
            parser.add_argument("--timeframe", help="default timeframe of the steps")
            parser.add_argument("--timezone", help="default timezone of the steps")
        else:
            add_scope_arguments(parser, timeframe_required=True)
        if analysis == "multi_analysis":
            parser.add_argument("--analyses", required=True, metavar="JSON|FILE",
                                help='{"label": {"analysis_type": ..., "target_property": ...}}'
                                     " as JSON or a JSON file")
        if analysis == "extraction":
            parser.add_argument("--latest", type=_args.positive_int, help="only the N most recent")
            parser.add_argument("--property-name", dest="property_names", action="append",
                                metavar="PROPERTY", help="only this property; repeatable")
            parser.add_argument("--email", help="e-mail the result to this address instead")
        elif analysis != "funnel":
            _add_group_arguments(parser)
        if analysis != "extraction":
            parser.add_argument("--max-age", type=_args.positive_int, metavar="SECONDS",
                                help="accept a cached result this old")
        parser.set_defaults(handler=run_analysis, analysis=analysis)


def analysis_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of the client method for the parsed flags."""
    analysis = args.analysis
    kwargs: dict[str, Any] = {
        "timeframe": _args.parse_timeframe(args.timeframe),
        "timezone": _args.parse_timezone(args.timezone),
    }
    if analysis != "extraction":
        kwargs["max_age"] = args.max_age
    if analysis == "funnel":
        steps = _args.load_json(args.steps, "--steps")
        if not isinstance(steps, list) or not steps or not all(isinstance(s, dict)
                                                                for s in steps):
            raise _args.UsageError("--steps: expected a non-empty JSON list of step objects")
        kwargs["steps"] = steps
        return kwargs
    kwargs["event_collection"] = args.collection
    kwargs["filters"] = _args.parse_filters(args.filters)
    if getattr(args, "target_property", None) is not None:
        kwargs["target_property"] = args.target_property
    if analysis == "percentile":
        kwargs["percentile"] = args.percentile
    if analysis == "multi_analysis":
        analyses = _args.load_json(args.analyses, "--analyses")
        if not isinstance(analyses, dict) or not analyses:
            raise _args.UsageError("--analyses: expected a JSON object of label -> analysis")
        kwargs["analyses"] = analyses
    if analysis == "extraction":
        kwargs.update(latest=args.latest, property_names=args.property_names, email=args.email)
        return kwargs
    group_by = args.group_by
    kwargs.update(interval=args.interval,
                  group_by=group_by[0] if group_by and len(group_by) == 1 else group_by,
                  order_by=_args.parse_order_by(args.order_by), limit=args.limit)
    return kwargs


def run_analysis(args: argparse.Namespace, settings: Settings) -> int:
    kwargs = analysis_arguments(args)
    with build_client(settings) as client:
        response = getattr(client, args.analysis)(all_keys=True, **kwargs)
    labels = list(kwargs.get("analyses") or ())
    table = _output.result_table(args.analysis, response, args_group_by(args), labels)
    _output.emit(args.format, response, table)
    return 0


def args_group_by(args: argparse.Namespace) -> list[str]:
    return list(getattr(args, "group_by", None) or [])
