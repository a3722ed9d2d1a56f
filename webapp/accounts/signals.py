"""A changed password ends the user's API tokens: a token taken with the old password must not outlive it."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from rest_framework.authtoken.models import Token

User = get_user_model()


@receiver(pre_save, sender=User)
def _note_password_change(sender, instance, update_fields=None, **kwargs) -> None:
    if instance.pk is None or (update_fields is not None and "password" not in update_fields):
        instance._password_changed = False
        return
    stored = User.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    instance._password_changed = stored is not None and stored != instance.password


@receiver(post_save, sender=User)
def _end_tokens(sender, instance, created, **kwargs) -> None:
    if not created and getattr(instance, "_password_changed", False):
        Token.objects.filter(user=instance).delete()
