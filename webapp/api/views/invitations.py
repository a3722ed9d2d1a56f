"""Invitations by link: an owner's list, create and revoke; anyone's accept with the link's key."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts.throttles import LoginThrottle
from webapp.datasets import invitations, selectors
from webapp.datasets.models import Invitation

from .. import serializers as s


def _data(invitation: Invitation) -> dict:
    return {"id": invitation.pk, "key": invitation.key, "url": invitations.invitation_path(invitation),
            "role": invitation.role, "status": invitation.status, "created": invitation.created,
            "expires": invitation.expires,
            "created_by": invitation.created_by.get_username() if invitation.created_by else None,
            "accepted_by": invitation.accepted_by.get_username() if invitation.accepted_by else None,
            "accepted": invitation.accepted, "revoked": invitation.revoked}


class DatasetInvitationsView(APIView):
    @extend_schema(responses=s.InvitationSerializer(many=True))
    def get(self, request, pk: int):
        """The dataset's invitations, newest first (owners)."""
        found = invitations.invitations_of(actor=request.user, dataset=selectors.get_dataset(request.user, pk))
        return Response(s.InvitationSerializer([_data(i) for i in found], many=True).data)

    @extend_schema(request=s.InvitationCreateSerializer, responses={201: s.InvitationSerializer})
    def post(self, request, pk: int):
        """A one-time link with a role, working for ICM_INVITATION_DAYS (7) days (owners)."""
        ser = s.InvitationCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        made = invitations.create_invitation(actor=request.user, dataset=selectors.get_dataset(request.user, pk),
                                             role=ser.validated_data["role"])
        return Response(s.InvitationSerializer(_data(made)).data, status=status.HTTP_201_CREATED)


class InvitationDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, pk: int, invitation_id: int):
        """Revoke an open invitation (owners): its link stops working."""
        dataset = selectors.get_dataset(request.user, pk)
        invitation = invitations.invitations_of(actor=request.user, dataset=dataset).filter(pk=invitation_id).first()
        if invitation is None:
            raise Http404("No such invitation.")
        invitations.revoke_invitation(actor=request.user, invitation=invitation)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationAcceptView(APIView):
    """Accept an invitation: the account is made with this username and password, joins the dataset with the
    invitation's role, and gets an API token. Once per link."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    @extend_schema(request=s.InvitationAcceptSerializer, responses={201: s.TokenSerializer}, auth=[])
    def post(self, request, key: str):
        ser = s.InvitationAcceptSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        user = invitations.accept_invitation(key=key, username=ser.validated_data["username"],
                                             password=ser.validated_data["password"])
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key}, status=status.HTTP_201_CREATED)
