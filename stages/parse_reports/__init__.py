"""``ctglip parse-reports``: free-text CT reports -> organ-grounded text, abnormal flags, abnormality dictionary.

Python use::

    from stages.parse_reports import ParseReportsConfig, run, parse_report
    result = run(ParseReportsConfig(reports=Path("reports.csv"), out_dir=Path("parsed")))
    report = parse_report(findings="Millimetric nodules in both lungs. No pericardial effusion.")
    report.organs["lung_left"].abnormalities  # ['nodule']
"""
from stages.parse_reports.config import ParseReportsConfig
from stages.parse_reports.io import read_abnormality_dictionary, read_organ_texts
from stages.parse_reports.parser import OrganReport, ParsedReport, ReportParser, parse_report
from stages.parse_reports.stage import run

__all__ = ["OrganReport", "ParseReportsConfig", "ParsedReport", "ReportParser", "parse_report",
           "read_abnormality_dictionary", "read_organ_texts", "run"]
