"""Draw bench/results/*.json as one SVG bar chart (bench/results/summary.svg): each benchmark's
CCM figure next to the baseline measured in the same run.

    .venv/bin/python bench/chart.py
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BAR, GAP, LEFT, WIDTH = 26, 18, 250, 460


def rows() -> list[tuple[str, list[tuple[str, float, str]]]]:
    found = []
    api = RESULTS / "api_send.json"
    if api.exists():
        data = json.loads(api.read_text())
        found.append(
            (
                f"send API, requests/s (ratio {data['ratio']:.2f})",
                [
                    ("bare Flask endpoint", data["bare_flask"]["requests_per_s"], "#9aa5b1"),
                    (
                        f"CCM POST /v1/messages (p99 {data['ccm']['p99_ms']:.0f} ms)",
                        data["ccm"]["requests_per_s"],
                        "#2563eb",
                    ),
                ],
            )
        )
    e2e = RESULTS / "e2e_email.json"
    if e2e.exists():
        data = json.loads(e2e.read_text())
        found.append(
            (
                f"email end to end, messages/s (ratio {data['ratio']:.2f})",
                [
                    ("bare smtplib loop", data["bare_smtplib_per_s"], "#9aa5b1"),
                    ("CCM API-accepted → SMTP sink", data["ccm"]["per_second"], "#2563eb"),
                ],
            )
        )
    tracking = RESULTS / "tracking.json"
    if tracking.exists():
        data = json.loads(tracking.read_text())
        found.append(
            (
                f"open tracking, hits/s (ratio {data['ratio']:.2f})",
                [
                    ("bare Flask GIF endpoint", data["bare_flask"]["requests_per_s"], "#9aa5b1"),
                    (f"CCM /t/o/… (p99 {data['ccm']['p99_ms']:.0f} ms)", data["ccm"]["requests_per_s"], "#2563eb"),
                ],
            )
        )
    found.extend(_ingest())
    found.extend(_campaigns())
    return found


def _campaigns() -> list[tuple[str, list[tuple[str, float, str]]]]:
    """A campaign into smtp-sink against bare smtplib, and the fan-out at 1M against one lane."""
    groups = []
    smtp = RESULTS / "campaign_smtp.json"
    if smtp.exists():
        data = json.loads(smtp.read_text())
        run = data["campaign"]
        groups.append(
            (
                f"campaign of {run['sent']:,} emails, messages/s (ratio {run['ratio_to_bare_smtplib']:.2f})",
                [
                    ("bare smtplib loop", data["bare_smtplib_per_s"], "#9aa5b1"),
                    (f"CCM launch → completed ({data['processes']} × {data['threads']})", run["per_second"], "#2563eb"),
                    ("target", 1000.0, "#d1d5db"),
                ],
            )
        )
    fanout = RESULTS / "campaign_fanout.json"
    if fanout.exists():
        largest = max(json.loads(fanout.read_text())["results"], key=lambda r: r["profiles"])
        if "one_lane" in largest:
            groups.append(
                (
                    f"fan-out of {largest['this']['recipients']:,}, recipients/s (ratio {largest['ratio']:.2f})",
                    [
                        ("one lane", largest["one_lane"]["recipients_per_s"], "#9aa5b1"),
                        ("CCM, two lanes", largest["this"]["recipients_per_s"], "#2563eb"),
                        ("target", 50000.0, "#d1d5db"),
                    ],
                )
            )
    return groups


def _ingest() -> list[tuple[str, list[tuple[str, float, str]]]]:
    path = RESULTS / "ingest_batch.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    ccm, bare = data["ccm"], data["bare_flask"]
    return [
        (
            f"event ingestion, events/s (ratio {data['ratio']['median']:.3f})",
            [
                ("bare Flask parsing the batch", bare["accepted_per_s"]["median"], "#9aa5b1"),
                (
                    f"CCM POST /v1/batch (p99 {ccm['p99_ms']['median']:.0f} ms)",
                    ccm["accepted_per_s"]["median"],
                    "#2563eb",
                ),
                ("target", 20000.0, "#d1d5db"),
            ],
        )
    ]


def svg(groups: list[tuple[str, list[tuple[str, float, str]]]]) -> str:
    parts, y = [], 20
    for title, bars in groups:
        scale = WIDTH / max(value for _, value, _ in bars)
        parts.append(f'<text x="10" y="{y}" font-weight="600">{title}</text>')
        y += 10
        for label, value, colour in bars:
            parts.append(f'<text x="10" y="{y + BAR * 0.7:.0f}">{label}</text>')
            parts.append(f'<rect x="{LEFT}" y="{y}" width="{value * scale:.0f}" height="{BAR}" fill="{colour}"/>')
            parts.append(f'<text x="{LEFT + value * scale + 6:.0f}" y="{y + BAR * 0.7:.0f}">{value:,.0f}</text>')
            y += BAR + 6
        y += GAP + 10
    height = y
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LEFT + WIDTH + 80}" height="{height}" '
        f'font-family="Helvetica, Arial, sans-serif" font-size="13">'
        f'<rect width="100%" height="100%" fill="white"/>{"".join(parts)}</svg>\n'
    )


def main() -> None:
    (RESULTS / "summary.svg").write_text(svg(rows()))
    print(RESULTS / "summary.svg")


if __name__ == "__main__":
    main()
