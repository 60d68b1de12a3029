"""Tests for arbiter.py, in the order of the module's sections.

Unit tests call the parser and the environ builder directly; integration
tests start ``python arbiter.py`` for real on a socket the test binds, send
real signals, and end every process they start.
"""
import pytest

import arbiter


# ---------------------------------------------------------------------------
# HTTP/1.1 parsing
# ---------------------------------------------------------------------------

def test_parse_head_simple_get():
    request = arbiter.parse_head(b"GET /a?b=1 HTTP/1.1\r\nHost: x", arbiter.Config())
    assert (request.method, request.path, request.query, request.version) == \
        ("GET", "/a", "b=1", (1, 1))
