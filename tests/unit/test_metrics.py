from completer.engine.metrics import MetricsLog, RequestMetrics


def m(speculate, drafted=0, accepted=0):
    return RequestMetrics("multi_line" if speculate else "single_line", speculate, 5 if speculate else 0,
                          20, drafted, accepted, 1.0, 0.2)


def test_log_line_covers_the_interval_and_resets():
    log = MetricsLog()
    assert log.log_line() is None
    log.add(m(True, 50, 40))
    log.add(m(False))
    line = log.log_line()
    assert "requests 2 (1 speculated, 1 bypassed)" in line and "acceptance rate 80.0%" in line
    assert log.log_line() is None
    assert log.as_dict()["requests_speculated"] == 1 and log.as_dict()["requests_bypassed"] == 1


def test_history_is_bounded():
    log = MetricsLog()
    for _ in range(500):
        log.add(m(False))
    assert len(log.recent) == 100 and len(log.as_dict()["recent"]) == 20
