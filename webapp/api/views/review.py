"""The API's review and audit: methods over seeds, agreement, verdicts, gold corrections, blind annotation
and spot-checks."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.datasets import permissions, selectors
from webapp.review import exports as review_exports
from webapp.review import selectors as review_selectors
from webapp.review import services as review_services
from webapp.runs import selectors as run_selectors

from .. import serializers as s
from .common import REPORT_FORMAT_PARAM, report_format


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
    ids = _ids(request.query_params.get("labelsets"), "labelsets")
    if not ids:  # a report of nothing is no answer
        raise ValidationError({"labelsets": "name the label sets to compare with gold: ?labelsets=A,B (ids)"})
    sets = [review_selectors.readable_label_set(request.user, dataset, x) for x in ids]
    gold_ids = _ids(request.query_params.get("gold"), "gold")
    gold = review_selectors.readable_label_set(request.user, dataset, gold_ids[0]) if gold_ids else \
        selectors.latest_gold(dataset)
    if gold is not None and gold.kind != "gold":
        raise ValidationError({"gold": "not a gold label set"})
    return sets, gold


REPORT_PARAMS = [
    OpenApiParameter("labelsets", str, required=True, description="label set ids, comma-separated"),
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
    @extend_schema(parameters=[*REPORT_PARAMS, REPORT_FORMAT_PARAM],
                   responses={(200, "application/json"): s.AgreementReportSerializer,
                              (200, "text/csv"): OpenApiTypes.STR})
    def get(self, request, pk: int):
        dataset = _label_reader(request, pk)
        fmt = report_format(request)
        sets, gold = _report_inputs(request, dataset)
        return review_exports.report_response(review_selectors.agreement_report(dataset, sets, gold), fmt)


class VerdictsView(APIView):
    @extend_schema(parameters=[OpenApiParameter(
        "history", {"type": "string", "enum": ["0", "1"]}, default="0",
        description="1: every verdict ever given, undone and superseded ones included (`retracted`, `superseded`); "
                    "otherwise the standing verdicts, one per reviewer and item")],
        responses=s.VerdictSerializer(many=True))
    def get(self, request, pk: int):
        dataset = _label_reader(request, pk)
        history = request.query_params.get("history", "0")
        if history not in ("0", "1"):
            raise ValidationError({"history": "1 for every verdict, 0 (the default) for the standing ones"})
        verdicts = review_selectors.verdicts_of(dataset)
        if history == "0":
            verdicts = verdicts.filter(retracted__isnull=True)
        return Response(s.VerdictSerializer(verdicts, many=True).data)

    @extend_schema(request=s.VerdictCreateSerializer, responses={201: s.VerdictSerializer})
    def post(self, request, pk: int):
        """A verdict on an item. Every verdict is kept, with who and when; another reviewer's stays too."""
        dataset = _label_reader(request, pk)
        ser = s.VerdictCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        example = selectors.get_example(dataset, ser.validated_data["example"])
        verdict = review_services.give_verdict(user=request.user, dataset=dataset, example=example,
                                               verdict=ser.validated_data["verdict"],
                                               note=ser.validated_data["note"])
        return Response(s.VerdictSerializer(verdict).data, status=status.HTTP_201_CREATED)


class GoldCorrectionsView(APIView):
    @extend_schema(responses=s.GoldCorrectionSerializer(many=True))
    def get(self, request, pk: int):
        """Every change to this dataset's gold labels, newest first: which version corrected which, who, why."""
        corrections = review_selectors.gold_corrections(_label_reader(request, pk))
        return Response(s.GoldCorrectionSerializer(corrections, many=True).data)


class VerdictUndoView(APIView):
    @extend_schema(request=None, responses={200: s.VerdictSerializer, 204: None})
    def post(self, request, pk: int):
        """Retract your own most recent verdict in this dataset (it stays in the history, marked retracted)."""
        dataset = _label_reader(request, pk)
        verdict = review_services.undo_last_verdict(user=request.user, dataset=dataset)
        if verdict is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(s.VerdictSerializer(verdict).data)


class VerdictsExportView(APIView):
    @extend_schema(parameters=[REPORT_FORMAT_PARAM],
                   responses={(200, "application/json"): s.VerdictExportRowSerializer(many=True),
                              (200, "text/csv"): OpenApiTypes.STR})
    def get(self, request, pk: int):
        dataset = _label_reader(request, pk)
        return review_exports.verdicts_response(dataset, report_format(request))


class AnnotationsView(APIView):
    @extend_schema(responses=s.AnnotationNextSerializer)
    def get(self, request, pk: int):
        """The next example for you to label blind (fields that carry labels are left out), and your progress."""
        dataset = selectors.get_dataset(request.user, pk)
        role = selectors.role_of(request.user, dataset)
        permissions.require(role, permissions.ANNOTATE, "Labeling")
        nxt, done, total = review_selectors.next_to_label(request.user, dataset)
        return Response(s.AnnotationNextSerializer({"done": done, "total": total, "example": nxt},
                                                   context={"role": role}).data)

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
        return Response(s.SpotCheckSerializer(review_selectors.spot_check_shown(check)).data,
                        status=status.HTTP_201_CREATED)


class SpotCheckDetailView(APIView):
    @extend_schema(responses=s.SpotCheckSerializer)
    def get(self, request, pk: int):
        """The sample and the gold error rate so far, with its 95% Wilson interval."""
        check = review_selectors.get_spot_check(request.user, pk)
        return Response(s.SpotCheckSerializer(review_selectors.spot_check_shown(check)).data)


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
