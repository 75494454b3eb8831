"""A test runner that reports every test of the project's own suite as one JSON line.

It is Django's DiscoverRunner with a result class that also appends, for each test, its id, its
outcome (passed, failed, errored, skipped) and, for a failure or an error, the exception as the
app's exception records name it (type, first line, innermost cause, frames), to the file named in
CACHEGATE_TEST_REPORT. The console output stays Django's own.
"""
import json
import os
import unittest

from django.test.runner import DiscoverRunner

from .exceptions import _first_line, _name, frames, innermost


class ReportingResult(unittest.TextTestResult):
    def _record(self, test, outcome, err=None, reason=""):
        record = {"test": test.id(), "outcome": outcome}
        if err is not None:
            exc = err[1]
            root = innermost(exc)
            record.update(
                type=_name(exc),
                message=_first_line(exc),
                innermost_type=_name(root),
                innermost_message=_first_line(root),
                frames=frames(exc),
            )
        if reason:
            record["message"] = str(reason)
        with open(os.environ["CACHEGATE_TEST_REPORT"], "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failed", err)

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "errored", err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped", reason=reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "passed", reason="expected failure")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "failed", reason="unexpected success")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._record(subtest, "failed" if failed else "errored", err)


class ReportingRunner(DiscoverRunner):
    def get_resultclass(self):
        return ReportingResult
