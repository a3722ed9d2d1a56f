"""The API's JSON bodies, with a nesting limit: DRF's parser turns Python's RecursionError into a 500."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from icm_engine.facade import MAX_JSON_DEPTH, json_depth


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            data = None
        if data is None or json_depth(data) > MAX_JSON_DEPTH:
            raise ParseError(f"JSON parse error - the body nests deeper than {MAX_JSON_DEPTH} levels")
        return data
