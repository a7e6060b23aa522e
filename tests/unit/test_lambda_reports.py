"""Lambda's REPORT lines as the local workers write them and the benchmark reads them."""

from pathlib import Path

from devstack.lambda_reports import TIMEOUT, Report, log_ends, parse, reports_since

COLD = Report("r-1", 12.25, 512, 71, init_duration_ms=412.5)
WARM = Report("r-2", 3.0, 512, 72)


def test_a_report_is_one_line_in_lambdas_format_and_reads_back() -> None:
    assert COLD.line() == (
        "REPORT RequestId: r-1\tDuration: 12.25 ms\tBilled Duration: 13 ms\tMemory Size: 512 MB\t"
        "Max Memory Used: 71 MB\tInit Duration: 412.50 ms\n"
    )
    assert parse(WARM.line()) == WARM
    timed_out = Report("r-3", 3000.0, 512, 80, status=TIMEOUT)
    assert timed_out.line().endswith("\tStatus: timeout\n")
    assert parse(timed_out.line()) == timed_out


def test_other_log_lines_are_not_reports() -> None:
    assert parse('{"level": "INFO", "message": "REPORT RequestId: in a message"}') is None
    assert parse("REPORT RequestId: r-1\tDuration: fast") is None


def test_only_the_reports_written_after_the_mark_are_read_by_step(tmp_path: Path) -> None:
    (tmp_path / "ReserveStock.log").write_text(COLD.line())
    ends = log_ends(tmp_path)
    with (tmp_path / "ReserveStock.log").open("a") as log:
        log.write("a line the handler printed\n" + WARM.line())
    (tmp_path / "ConfirmOrder.log").write_text(COLD.line())  # a step whose first worker started since
    assert reports_since(tmp_path, ends) == {"ConfirmOrder": [COLD], "ReserveStock": [WARM]}
