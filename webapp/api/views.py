"""REST endpoints under /api/. Thin: they authenticate, scope every lookup to the user's datasets
(others get 404), and hand writes to services."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts.throttles import LoginThrottle
from webapp.datasets import permissions, selectors, services
from webapp.datasets.exports import FORMATS, dataset_export, label_set_export
from webapp.datasets.parsing import parse_dataset_file, read_upload
from webapp.review import exports as review_exports
from webapp.review import selectors as review_selectors
from webapp.review import services as review_services
from webapp.runs import selectors as run_selectors
from webapp.runs import services as run_services

from . import serializers as s

IMPORT_ERRORS = {400: OpenApiResponse(s.ImportErrorSerializer, description="the file was rejected; nothing written")}
FORMAT_PARAM = OpenApiParameter("format", str, enum=list(FORMATS), default="jsonl", description="jsonl or csv")
DOWNLOAD = {
    (200, "application/x-ndjson"): OpenApiTypes.STR,
    (200, "text/csv"): OpenApiTypes.STR,
}


def _format(request) -> str:
    fmt = request.query_params.get("format", "jsonl")
    if fmt not in FORMATS:
        raise ValidationError({"format": f"format must be one of {', '.join(FORMATS)}"})
    return fmt


class TokenView(APIView):
    """Exchange a username and password for an API token (`Authorization: Token <key>`)."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    @extend_schema(request=s.TokenRequestSerializer, responses={200: s.TokenSerializer, 400: None}, auth=[])
    def post(self, request):
        ser = s.TokenRequestSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        user = authenticate(request, username=ser.validated_data["username"], password=ser.validated_data["password"])
        if user is None or not user.is_active:
            raise ValidationError({"non_field_errors": ["Unable to log in with the given credentials."]})
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class DatasetListView(generics.GenericAPIView):
    serializer_class = s.DatasetSerializer

    def get_queryset(self):
        return selectors.datasets_for_user(self.request.user)

    @extend_schema(responses=s.DatasetSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.DatasetSerializer(page, many=True).data)

    @extend_schema(
        request={"multipart/form-data": s.DatasetCreateSerializer},
        responses={201: s.DatasetSerializer, 200: OpenApiResponse(s.PreviewSerializer, description="dry run"),
                   **IMPORT_ERRORS},
    )
    def post(self, request):
        """Create a dataset from an uploaded file (or, with `dry_run`, preview it without writing)."""
        ser = s.DatasetCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        upload = d["file"]
        data = read_upload(upload)
        if d["dry_run"]:
            parsed = parse_dataset_file(upload.name, data, d["task"], d.get("template"), d.get("consistency"))
            return Response(parsed.preview())
        dataset = services.create_dataset(
            owner=request.user, filename=upload.name, data=data, task=d["task"], name=d.get("name", ""),
            template=d.get("template"), consistency=d.get("consistency"), description=d.get("description", ""),
        )
        return Response(s.DatasetSerializer(selectors.get_dataset(request.user, dataset.pk, counts=True)).data,
                        status=status.HTTP_201_CREATED)


class DatasetDetailView(APIView):
    @extend_schema(responses=s.DatasetSerializer)
    def get(self, request, pk: int):
        return Response(s.DatasetSerializer(selectors.get_dataset(request.user, pk, counts=True)).data)

    @extend_schema(request=s.DatasetUpdateSerializer, responses=s.DatasetSerializer)
    def patch(self, request, pk: int):
        dataset = selectors.get_dataset(request.user, pk)
        ser = s.DatasetUpdateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        services.update_dataset(user=request.user, dataset=dataset, **ser.validated_data)
        return Response(s.DatasetSerializer(selectors.get_dataset(request.user, pk, counts=True)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        services.delete_dataset(user=request.user, dataset=selectors.get_dataset(request.user, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DatasetExamplesView(generics.ListAPIView):
    serializer_class = s.ExampleSerializer

    def get_queryset(self):
        dataset = selectors.get_dataset(self.request.user, self.kwargs["pk"])
        self.role = selectors.role_of(self.request.user, dataset)
        return selectors.examples_of(dataset, self.request.query_params.get("search", ""))

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "role": getattr(self, "role", None)}

    @extend_schema(parameters=[OpenApiParameter("search", str, description="text in any field, or an exact id")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class DatasetLabelSetsView(generics.GenericAPIView):
    serializer_class = s.LabelSetSerializer
    pagination_class = None

    @extend_schema(responses=s.LabelSetSerializer(many=True))
    def get(self, request, pk: int):
        dataset = selectors.get_dataset(request.user, pk)
        label_sets = selectors.label_sets_with_counts(dataset, request.user)
        return Response(s.LabelSetSerializer(label_sets, many=True).data)

    @extend_schema(
        request={"multipart/form-data": s.LabelSetImportSerializer},
        responses={201: s.LabelSetSerializer, **IMPORT_ERRORS},
    )
    def post(self, request, pk: int):
        """Import a label set: JSONL or CSV rows of `id` and `label` (optional `score`)."""
        dataset = selectors.get_dataset(request.user, pk)
        ser = s.LabelSetImportSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        label_set = services.import_label_set(
            user=request.user, dataset=dataset, filename=d["file"].name, data=read_upload(d["file"]),
            kind=d["kind"], name=d.get("name", ""), model=d.get("model", ""),
        )
        created = selectors.label_sets_with_counts(dataset).get(pk=label_set.pk)
        return Response(s.LabelSetSerializer(created).data, status=status.HTTP_201_CREATED)


class DatasetExportView(APIView):
    @extend_schema(parameters=[FORMAT_PARAM], responses=DOWNLOAD)
    def get(self, request, pk: int):
        """The whole dataset: every example's fields and one column per label set."""
        dataset = selectors.get_dataset(request.user, pk)
        permissions.require_label_reader(selectors.role_of(request.user, dataset))
        return dataset_export(dataset, _format(request))


class DatasetMembersView(generics.GenericAPIView):
    serializer_class = s.MemberSerializer
    pagination_class = None

    @extend_schema(responses=s.MemberSerializer(many=True))
    def get(self, request, pk: int):
        dataset = selectors.get_dataset(request.user, pk)
        return Response(s.MemberSerializer(selectors.members_of(dataset), many=True).data)

    @extend_schema(request=s.MemberCreateSerializer, responses={201: s.MemberSerializer})
    def post(self, request, pk: int):
        dataset = selectors.get_dataset(request.user, pk)
        ser = s.MemberCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        member = services.add_member(actor=request.user, dataset=dataset, **ser.validated_data)
        return Response(s.MemberSerializer(member).data, status=status.HTTP_201_CREATED)


class DatasetMemberDetailView(APIView):
    @extend_schema(request=s.MemberUpdateSerializer, responses=s.MemberSerializer)
    def patch(self, request, pk: int, user_id: int):
        membership = selectors.get_membership(selectors.get_dataset(request.user, pk), user_id)
        ser = s.MemberUpdateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        services.set_member_role(actor=request.user, membership=membership, role=ser.validated_data["role"])
        return Response(s.MemberSerializer(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int, user_id: int):
        membership = selectors.get_membership(selectors.get_dataset(request.user, pk), user_id)
        services.remove_member(actor=request.user, membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LabelSetDetailView(APIView):
    @extend_schema(responses=s.LabelSetSerializer)
    def get(self, request, pk: int):
        label_set = selectors.get_label_set(request.user, pk)
        return Response(s.LabelSetSerializer(selectors.label_sets_with_counts(label_set.dataset).get(pk=pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        services.delete_label_set(user=request.user, label_set=selectors.get_label_set(request.user, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class LabelSetLabelsView(generics.ListAPIView):
    serializer_class = s.LabelSerializer

    def get_queryset(self):
        return selectors.labels_of(selectors.get_label_set(self.request.user, self.kwargs["pk"]))


class LabelSetAgreementView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("other", int, required=True, description="the label set to compare with")],
        responses=s.AgreementSerializer,
    )
    def get(self, request, pk: int):
        """How often this label set agrees with another of the same dataset, on the examples both label."""
        label_set = selectors.get_label_set(request.user, pk)
        other = selectors.get_label_set(request.user, request.query_params.get("other"))
        if other.dataset_id != label_set.dataset_id:
            raise ValidationError({"other": "both label sets must belong to one dataset"})
        return Response({"label_set": label_set.pk, "other": other.pk, **selectors.agreement(label_set, other)})


class LabelSetExportView(APIView):
    @extend_schema(parameters=[FORMAT_PARAM], responses=DOWNLOAD)
    def get(self, request, pk: int):
        """Every label with the example's id and the label set's provenance."""
        return label_set_export(selectors.get_label_set(request.user, pk), _format(request))


class RunListView(generics.GenericAPIView):
    serializer_class = s.RunSerializer

    def get_queryset(self):
        qs = run_selectors.runs_for_user(self.request.user).defer("checkpoint")
        dataset = self.request.query_params.get("dataset")
        if dataset:
            qs = qs.filter(dataset_id=dataset) if dataset.isdigit() else qs.none()
        return qs.order_by("-created", "-id")

    @extend_schema(parameters=[OpenApiParameter("dataset", int, description="only this dataset's runs")],
                   responses=s.RunSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([run_selectors.snapshot(r) for r in page])

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
            baselines=d["baselines"], hyperparameters=d["hyperparameters"], shards=d.get("shards"),
            backend=d["backend"], model=d["model"], limit=d.get("limit"),
            backend_options={"base_url": d["base_url"]} if d.get("base_url") else {})
        # One run a seed: the first one's snapshot, as with one seed, and every seed's run id.
        return Response({**run_selectors.snapshot(runs[0]), "runs": [r.pk for r in runs]},
                        status=status.HTTP_201_CREATED)


class RunDetailView(APIView):
    @extend_schema(responses=s.RunSerializer)
    def get(self, request, pk: int):
        return Response(run_selectors.snapshot(run_selectors.get_run(request.user, pk)))


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

def _label_reader(request, pk: int):
    dataset = selectors.get_dataset(request.user, pk)
    permissions.require_label_reader(selectors.role_of(request.user, dataset))
    return dataset


def _ids(raw: str | None, name: str) -> list[int]:
    try:
        return [int(x) for x in (raw or "").split(",") if x.strip()]
    except ValueError:
        raise ValidationError({name: "give label set ids separated by commas"}) from None


def _report_inputs(request, dataset):
    sets = [review_selectors.readable_label_set(request.user, dataset, x)
            for x in _ids(request.query_params.get("labelsets"), "labelsets")]
    gold_ids = _ids(request.query_params.get("gold"), "gold")
    gold = review_selectors.readable_label_set(request.user, dataset, gold_ids[0]) if gold_ids else \
        selectors.latest_gold(dataset)
    if gold is not None and gold.kind != "gold":
        raise ValidationError({"gold": "not a gold label set"})
    return sets, gold


REPORT_PARAMS = [
    OpenApiParameter("labelsets", str, description="label set ids, comma-separated"),
    OpenApiParameter("gold", int, description="the gold label set (any version; default: the latest)"),
]


class MethodsView(APIView):
    @extend_schema(responses=s.MethodRowSerializer(many=True))
    def get(self, request, pk: int):
        """Each method's latest experiment over its seeds against the latest gold: mean accuracy, min-max and
        the number of seeds, each seed's comparison (n, majority class, balance, AUROC, warnings), and for
        ICM each seed's final U with the label-free pick (highest U) and whether it was the most accurate."""
        dataset = _label_reader(request, pk)
        return Response(run_selectors.method_table_data(run_selectors.method_table(dataset)))


class AgreementView(APIView):
    @extend_schema(parameters=REPORT_PARAMS, responses=s.AgreementReportSerializer)
    def get(self, request, pk: int):
        """Accuracy against gold with 95% Wilson intervals and confusion matrices, Cohen's kappa with intervals
        for every pair, McNemar's exact test of each model set against each human set, per category."""
        dataset = _label_reader(request, pk)
        sets, gold = _report_inputs(request, dataset)
        return Response(review_selectors.agreement_report(dataset, sets, gold))


class AgreementExportView(APIView):
    @extend_schema(parameters=[*REPORT_PARAMS, OpenApiParameter("format", str, enum=["json", "csv"])],
                   responses={(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.STR})
    def get(self, request, pk: int):
        dataset = _label_reader(request, pk)
        sets, gold = _report_inputs(request, dataset)
        return review_exports.report_response(review_selectors.agreement_report(dataset, sets, gold),
                                              request.query_params.get("format"))


def _verdict_data(v) -> dict:
    return {"id": v.pk, "example": v.example_id, "example_id": v.example.external_id, "verdict": v.verdict,
            "note": v.note, "user": v.user.get_username(), "created": v.created, "retracted": v.retracted}


class VerdictsView(APIView):
    @extend_schema(responses=s.VerdictSerializer(many=True))
    def get(self, request, pk: int):
        dataset = _label_reader(request, pk)
        return Response(s.VerdictSerializer([_verdict_data(v) for v in review_selectors.verdicts_of(dataset)],
                                            many=True).data)

    @extend_schema(request=s.VerdictSerializer, responses={201: s.VerdictSerializer})
    def post(self, request, pk: int):
        """A verdict on an item. Every verdict is kept, with who and when; another reviewer's stays too."""
        dataset = _label_reader(request, pk)
        ser = s.VerdictSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        example = selectors.get_example(dataset, ser.validated_data["example"])
        verdict = review_services.give_verdict(user=request.user, dataset=dataset, example=example,
                                               verdict=ser.validated_data["verdict"],
                                               note=ser.validated_data["note"])
        return Response(s.VerdictSerializer(_verdict_data(verdict)).data, status=status.HTTP_201_CREATED)


class GoldCorrectionsView(APIView):
    @extend_schema(responses=s.GoldCorrectionSerializer(many=True))
    def get(self, request, pk: int):
        """Every change to this dataset's gold labels, newest first: which version corrected which, who, why."""
        rows = [{"id": c.pk, "example": c.example_id, "example_id": c.example.external_id, "old_value": c.old_value,
                 "new_value": c.new_value, "from_set": c.from_set_id, "from_version": c.from_set.version,
                 "to_set": c.to_set_id, "to_version": c.to_set.version, "reason": c.reason,
                 "user": c.user.get_username(), "created": c.created}
                for c in review_selectors.gold_corrections(_label_reader(request, pk))]
        return Response(s.GoldCorrectionSerializer(rows, many=True).data)


class VerdictUndoView(APIView):
    @extend_schema(request=None, responses={200: s.VerdictSerializer, 204: None})
    def post(self, request, pk: int):
        """Retract your own most recent verdict in this dataset (it stays in the history, marked retracted)."""
        dataset = _label_reader(request, pk)
        verdict = review_services.undo_last_verdict(user=request.user, dataset=dataset)
        if verdict is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(s.VerdictSerializer(_verdict_data(verdict)).data)


class VerdictsExportView(APIView):
    @extend_schema(parameters=[OpenApiParameter("format", str, enum=["json", "csv"])],
                   responses={(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.STR})
    def get(self, request, pk: int):
        return review_exports.verdicts_response(_label_reader(request, pk), request.query_params.get("format"))


class AnnotationsView(APIView):
    @extend_schema(responses=s.AnnotationNextSerializer)
    def get(self, request, pk: int):
        """The next example for you to label blind (fields that carry labels are left out), and your progress."""
        dataset = selectors.get_dataset(request.user, pk)
        role = selectors.role_of(request.user, dataset)
        permissions.require(role, permissions.ANNOTATE, "Labeling")
        nxt, done, total = review_selectors.next_to_label(request.user, dataset)
        data = {"done": done, "total": total,
                "example": s.ExampleSerializer(nxt, context={"role": role}).data if nxt else None}
        return Response(data)

    @extend_schema(request=s.AnnotationSerializer, responses={201: s.AnnotationSerializer})
    def post(self, request, pk: int):
        dataset = selectors.get_dataset(request.user, pk)
        ser = s.AnnotationSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        example = selectors.get_example(dataset, ser.validated_data["example"])
        review_services.annotate(user=request.user, dataset=dataset, example=example,
                                 value=ser.validated_data["label"])
        return Response(ser.validated_data, status=status.HTTP_201_CREATED)


class AnnotationUndoView(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request, pk: int):
        """Remove your most recent blind label."""
        dataset = selectors.get_dataset(request.user, pk)
        permissions.require(selectors.role_of(request.user, dataset), permissions.ANNOTATE, "Labeling")
        review_services.undo_annotation(user=request.user, dataset=dataset)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _spot_check_data(check) -> dict:
    result = review_selectors.spot_check_result(check)
    return {"id": check.pk, "gold": check.gold_id, "size": check.size, "seed": check.seed,
            "items": list(check.items.values_list("example_id", flat=True)),
            **{k: result[k] for k in ("judgments", "disagreements", "error_rate", "ci_low", "ci_high")}}


class SpotChecksView(APIView):
    @extend_schema(request=s.SpotCheckCreateSerializer, responses={201: s.SpotCheckSerializer})
    def post(self, request, pk: int):
        """Draw a random sample of the gold set, stratified by gold label, for blind review."""
        dataset = _label_reader(request, pk)
        ser = s.SpotCheckCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        gold = review_selectors.readable_label_set(request.user, dataset, ser.validated_data["gold"])
        check = review_services.create_spot_check(user=request.user, dataset=dataset, gold=gold,
                                                  size=ser.validated_data["size"], seed=ser.validated_data["seed"])
        return Response(_spot_check_data(check), status=status.HTTP_201_CREATED)


class SpotCheckDetailView(APIView):
    @extend_schema(responses=s.SpotCheckSerializer)
    def get(self, request, pk: int):
        """The sample and the gold error rate so far, with its 95% Wilson interval."""
        return Response(_spot_check_data(review_selectors.get_spot_check(request.user, pk)))


class SpotCheckAnswerView(APIView):
    @extend_schema(request=s.AnnotationSerializer, responses={201: s.AnnotationSerializer})
    def post(self, request, pk: int):
        """Your blind label for one example of the sample."""
        check = review_selectors.get_spot_check(request.user, pk)
        ser = s.AnnotationSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        item = review_selectors.get_spot_check_item(check, ser.validated_data["example"])
        review_services.answer_spot_check(user=request.user, item=item, value=ser.validated_data["label"])
        return Response(ser.validated_data, status=status.HTTP_201_CREATED)
