from django.contrib import admin

from .models import Dataset, LabelSet, Membership


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "task", "owner", "created"]
    inlines = [MembershipInline]
    search_fields = ["name"]


@admin.register(LabelSet)
class LabelSetAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "kind", "dataset", "source", "created"]
    list_filter = ["kind", "source"]
