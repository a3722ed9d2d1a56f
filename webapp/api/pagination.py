from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """DRF's page numbers, with its parameters checked: a `page_size` that is not a whole number from 1 to
    500 is a 400 naming it (DRF falls back to the default page silently)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        raw = request.query_params.getlist(self.page_size_query_param)
        if not raw:
            return self.page_size
        try:
            size = int(raw[-1])
        except ValueError:
            size = 0
        if len(raw) > 1 or not 1 <= size <= self.max_page_size:
            raise ValidationError({self.page_size_query_param: f"a whole number from 1 to {self.max_page_size}"})
        return size

    def get_schema_operation_parameters(self, view):
        params = super().get_schema_operation_parameters(view)
        for p in params:
            if p["name"] == self.page_size_query_param:
                p["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
            if p["name"] == self.page_query_param:
                p["schema"] = {"type": "integer", "minimum": 1}
        return params
