"""The API's datasets, their examples, label sets, exports and members, and tokens. Thin: they authenticate,
scope every lookup to the user's datasets (others get 404), and hand writes to services."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts.throttles import LoginThrottle, account_wait, forget_failures, retry_after
from webapp.datasets import memberships, permissions, selectors, services
from webapp.datasets.data_view import api_examples
from webapp.datasets.downloads import dataset_export, label_set_export
from webapp.datasets.label_studio import looks_like_export, parse_dataset_export
from webapp.datasets.parsing import parse_dataset_file, read_upload
from webapp.ids import as_id

from .. import serializers as s
from .common import DOWNLOAD, FORMAT_PARAM, IMPORT_ERRORS, LABEL_STUDIO_PARAMS, download_format


class TokenView(APIView):
    """Exchange a username and password for an API token (`Authorization: Token <key>`)."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    @extend_schema(request=s.TokenRequestSerializer, responses={200: s.TokenSerializer, 400: None}, auth=[])
    def post(self, request):
        ser = s.TokenRequestSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        wait = account_wait(ser.validated_data["username"])
        if wait:
            raise Throttled(wait=retry_after(wait), detail="Too many sign-in attempts for this account.")
        user = authenticate(request, username=ser.validated_data["username"], password=ser.validated_data["password"])
        if user is None or not user.is_active:
            raise ValidationError({"non_field_errors": ["Unable to log in with the given credentials."]})
        forget_failures(user.get_username())
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
        label_studio = d["format"] == "label-studio" or (d["format"] == "auto" and looks_like_export(data))
        ls_options = {"true_choice": d["true_choice"], "from_name": d["from_name"]} if label_studio else {}
        if d["dry_run"]:
            parsed = (parse_dataset_export(upload.name, data, task=d["task"], template=d.get("template"),
                                           consistency=d.get("consistency"), **ls_options) if label_studio else
                      parse_dataset_file(upload.name, data, d["task"], d.get("template"), d.get("consistency")))
            return Response(parsed.preview())
        create = services.create_dataset_from_label_studio if label_studio else services.create_dataset
        dataset = create(
            owner=request.user, filename=upload.name, data=data, task=d["task"], name=d.get("name", ""),
            template=d.get("template"), consistency=d.get("consistency"), description=d.get("description", ""),
            **ls_options,
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
        examples, self.shown = api_examples(self.request.user, dataset, self.request.query_params)
        return examples

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "role": getattr(self, "role", None),
                "shown": getattr(self, "shown", [])}

    @extend_schema(parameters=[
        OpenApiParameter("search", str, description="text in any field you are shown, or an exact id"),
        OpenApiParameter("labelsets", str, description="label set ids, comma-separated: each example's `labels` "
                                                       "in them (not for annotators)"),
        OpenApiParameter("disagree", str, description="two or more label set ids, comma-separated: only examples "
                                                      "that two of them label differently"),
        OpenApiParameter("label", str, pattern=r"^\d+:(true|false|none)$",
                         description="SET:true, SET:false or SET:none: only examples that set labels so"),
    ])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class DatasetLabelSetsView(generics.GenericAPIView):
    pagination_class = None

    # The browsable API builds its filter form from the queryset and its POST form from the serializer.
    def get_queryset(self):
        return selectors.label_sets_with_counts(selectors.get_dataset(self.request.user, self.kwargs["pk"]),
                                                self.request.user)

    def get_serializer_class(self):
        return s.LabelSetImportSerializer if self.request.method == "POST" else s.LabelSetSerializer

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
        """Import a label set: JSONL, CSV or Parquet rows of `id` and `label` (optional `score`)."""
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


class DatasetLabelStudioImportView(generics.GenericAPIView):
    serializer_class = s.LabelStudioImportSerializer
    pagination_class = None

    def get_queryset(self):  # for the browsable API's form
        return selectors.label_sets_with_counts(selectors.get_dataset(self.request.user, self.kwargs["pk"]),
                                                self.request.user)

    @extend_schema(
        request={"multipart/form-data": s.LabelStudioImportSerializer},
        responses={201: s.LabelSetSerializer(many=True), **IMPORT_ERRORS},
    )
    def post(self, request, pk: int):
        """Import a Label Studio JSON export: a human label set per annotator, a label set per prediction
        model_version (with its scores), gold from ground-truth annotations. All or nothing."""
        dataset = selectors.get_dataset(request.user, pk)
        ser = s.LabelStudioImportSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        created = services.import_label_studio(
            user=request.user, dataset=dataset, filename=d["file"].name, data=read_upload(d["file"]),
            true_choice=d["true_choice"], from_name=d["from_name"])
        sets = selectors.label_sets_with_counts(dataset).filter(pk__in=[ls.pk for ls in created])
        return Response(s.LabelSetSerializer(sets, many=True).data, status=status.HTTP_201_CREATED)


class DatasetExportView(APIView):
    @extend_schema(parameters=[FORMAT_PARAM, *LABEL_STUDIO_PARAMS], responses=DOWNLOAD)
    def get(self, request, pk: int):
        """The whole dataset: every example's fields and one column per label set (label-studio: one task per
        example, ICM and baseline labels as predictions, human and the latest gold as annotations)."""
        dataset = selectors.get_dataset(request.user, pk)
        permissions.require_label_reader(selectors.role_of(request.user, dataset))
        return dataset_export(dataset, download_format(request), query=request.query_params)


class DatasetMembersView(generics.GenericAPIView):
    pagination_class = None

    # As DatasetLabelSetsView's: for the browsable API's forms.
    def get_queryset(self):
        return selectors.members_of(selectors.get_dataset(self.request.user, self.kwargs["pk"]))

    def get_serializer_class(self):
        return s.MemberCreateSerializer if self.request.method == "POST" else s.MemberSerializer

    @extend_schema(responses=s.MemberSerializer(many=True))
    def get(self, request, pk: int):
        dataset = selectors.get_dataset(request.user, pk)
        return Response(s.MemberSerializer(selectors.members_of(dataset), many=True).data)

    @extend_schema(request=s.MemberCreateSerializer, responses={201: s.MemberSerializer})
    def post(self, request, pk: int):
        dataset = selectors.get_dataset(request.user, pk)
        ser = s.MemberCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        member = memberships.add_member(actor=request.user, dataset=dataset, **ser.validated_data)
        return Response(s.MemberSerializer(member).data, status=status.HTTP_201_CREATED)


class DatasetMemberDetailView(APIView):
    @extend_schema(request=s.MemberUpdateSerializer, responses=s.MemberSerializer)
    def patch(self, request, pk: int, user_id: int):
        membership = selectors.get_membership(selectors.get_dataset(request.user, pk), user_id)
        ser = s.MemberUpdateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        memberships.set_member_role(actor=request.user, membership=membership, role=ser.validated_data["role"])
        return Response(s.MemberSerializer(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int, user_id: int):
        membership = selectors.get_membership(selectors.get_dataset(request.user, pk), user_id)
        memberships.remove_member(actor=request.user, membership=membership)
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
        if as_id(request.query_params.get("other")) is None:
            raise ValidationError({"other": "give the id of the label set to compare with: ?other=ID"})
        other = selectors.get_label_set(request.user, request.query_params.get("other"))
        if other.dataset_id != label_set.dataset_id:
            raise ValidationError({"other": "both label sets must belong to one dataset"})
        return Response({"label_set": label_set.pk, "other": other.pk, **selectors.agreement(label_set, other)})


class LabelSetExportView(APIView):
    @extend_schema(parameters=[FORMAT_PARAM, *LABEL_STUDIO_PARAMS], responses=DOWNLOAD)
    def get(self, request, pk: int):
        """Every label with the example's id and the label set's provenance (label-studio: every example as
        a task, with this set's labels)."""
        label_set = selectors.get_label_set(request.user, pk)
        return label_set_export(label_set, download_format(request), query=request.query_params,
                                reads_labels=permissions.reads_labels(selectors.role_of(request.user,
                                                                                        label_set.dataset)))
