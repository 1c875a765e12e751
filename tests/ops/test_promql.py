"""The tests' metric-name reader on the expression shapes the rules and dashboard use."""

from __future__ import annotations

from tests.ops.promql import metric_names


def test_reads_names_through_functions_matchers_and_grouping() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (namespace, le) (rate(a_bucket{x="y",z=~"5.."}[5m])))'
        " / on (namespace, model) group_left() pynomaly:rec:ratio * 3"
        ' and on (ns) label_replace(max by (d) (last_over_time(b{d!=""}[1h])),'
        ' "x", "$1", "d", "(.+)")'
    )
    assert metric_names(expr) == {"a_bucket", "pynomaly:rec:ratio", "b"}


def test_ignores_grafana_variables_and_keywords() -> None:
    assert metric_names('sum(rate(c_total{n="$namespace"}[$__rate_interval])) > bool 1') == {
        "c_total"
    }
