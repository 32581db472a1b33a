#!/usr/bin/env python3
"""Renders or lints a Helm chart with Helm's own engine (helm-python-sdk: Helm as a library, no
helm binary, no network), for the Rust chart tests.

    render_chart.py render CHART_DIR RELEASE NAMESPACE < values.yaml
        Values (YAML or JSON) on stdin are merged over the chart's own, as `helm template -f`
        does. Prints a JSON object: template path -> rendered text.
    render_chart.py lint CHART_DIR KUBE_VERSION < values.yaml
        Prints the report of `helm lint --strict --kube-version KUBE_VERSION -f values.yaml` as
        JSON.

Exits 1 with Helm's error message on stderr when the chart does not render (a `fail` included).
"""

import json
import sys

import helm_python


def main(argv):
    if len(argv) == 5 and argv[1] == "render":
        _, _, chart_dir, release, namespace = argv
        values = helm_python.values_from_yaml(sys.stdin.read() or "{}")
        chart = helm_python.Chart.load(chart_dir)
        files = chart.render(values, name=release, namespace=namespace, is_install=True)
        json.dump(files, sys.stdout, sort_keys=True)
    elif len(argv) == 4 and argv[1] == "lint":
        _, _, chart_dir, kube_version = argv
        values = helm_python.values_from_yaml(sys.stdin.read() or "{}")
        report = helm_python.lint(chart_dir, values, strict=True, kube_version=kube_version)
        json.dump(report, sys.stdout, sort_keys=True)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except helm_python.HelmError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
