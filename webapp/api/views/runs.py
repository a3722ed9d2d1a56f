"""The API's runs: start (one per seed, with baselines), read, cancel, resume."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.datasets import selectors
from webapp.ids import as_id
from webapp.runs import selectors as run_selectors
from webapp.runs import services as run_services

from .. import serializers as s


class RunListView(generics.GenericAPIView):
    serializer_class = s.RunSerializer

    def get_queryset(self):
        qs = run_selectors.runs_for_user(self.request.user).defer("checkpoint").select_related("label_set", "dataset")
        given = self.request.query_params.getlist("dataset")
        if given:
            pk = as_id(given[-1])
            if pk is None or len(given) > 1:
                raise ValidationError({"dataset": "one dataset id, a whole number from 1 to 2**63 - 1"})
            qs = qs.filter(dataset_id=pk)
        return qs.order_by("-created", "-id")

    @extend_schema(parameters=[OpenApiParameter("dataset", {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                                               description="only this dataset's runs")],
                   responses=s.RunSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(run_selectors.snapshots(page))

    @extend_schema(request=s.RunCreateSerializer, responses={201: s.RunCreatedSerializer})
    def post(self, request):
        """Queue an ICM run or a baseline, one run per seed. Everything is validated before anything is queued."""
        ser = s.RunCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        dataset = selectors.get_dataset(request.user, d["dataset"])
        if d["task"] != dataset.task:
            raise ValidationError({"task": f"the dataset's task preset is {dataset.task!r}"})
        runs = run_services.start_runs(
            user=request.user, dataset=dataset, method=d["method"], seeds=d.get("seeds") or [d["seed"]],
            baselines=d["baseline_methods"] if "baseline_methods" in d else d["baselines"], config=d["config"],
            shards=d.get("shards"),
            backend=d["backend"], model=d["model"], limit=d.get("limit"),
            backend_options={"base_url": d["base_url"]} if d.get("base_url") else {})
        # One run a seed: the first one's snapshot, as with one seed, and every seed's run id.
        return Response({**run_selectors.snapshot(runs[0]), "runs": [r.pk for r in runs]},
                        status=status.HTTP_201_CREATED)


class RunDetailView(APIView):
    @extend_schema(responses=s.RunSerializer)
    def get(self, request, pk: int):
        run = run_selectors.get_run(request.user, pk)
        return Response(run_selectors.snapshot(run, detail=run_selectors.sees_failures(request.user, run)))


class RunCancelView(APIView):
    @extend_schema(request=None, responses=s.RunSerializer)
    def post(self, request, pk: int):
        """Stop a run within seconds; what it had labeled is kept as a partial label set."""
        run = run_services.cancel_run(user=request.user, run=run_selectors.get_run(request.user, pk))
        return Response(run_selectors.snapshot(run))


class RunResumeView(APIView):
    @extend_schema(request=None, responses=s.RunSerializer)
    def post(self, request, pk: int):
        """Queue a failed or cancelled run again; it continues from its last checkpoint."""
        run = run_services.resume_run(user=request.user, run=run_selectors.get_run(request.user, pk))
        return Response(run_selectors.snapshot(run))


# -- review -------------------------------------------------------------------------------------------------------
