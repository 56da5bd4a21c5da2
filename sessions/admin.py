"""Admin: where environments (the commands workers run), impact rules and categories are configured."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from .models import (
    SHARDS_MAX,
    Analysis,
    AnalysisEdit,
    ApiToken,
    BusinessArea,
    Cycle,
    Deployment,
    Environment,
    FailureSignature,
    Fix,
    ImpactRule,
    LoopSession,
    SignatureCategory,
    SuccessCriterion,
    TestCase,
    TestResult,
    TestRun,
    WhyStep,
)
from .services import deletion, environments, signatures
from .services.tokens import new_token
from .work import runners


def _argument_list(value: object, field: str) -> list[str]:
    if value in (None, ""):
        return []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ValidationError(f"{field} must be a JSON list of strings (an argument list, never a shell string).")
    return value


class EnvironmentForm(forms.ModelForm):
    class Meta:
        model = Environment
        fields = [
            "name",
            "description",
            "repository",
            "deploy_command",
            "setup_command",
            "setup_cache_files",
            "test_command",
            "working_dir",
            "env_vars",
            "timeout_s",
            "deploy_timeout_s",
            "revisions",
            "default_revision",
            "writes_report_log",
            "writes_junit",
            "end_to_end",
            "metric_targets",
            "marker_args",
            "keyword_args",
            "health_check",
            "health_check_timeout_s",
            "unreachable_share",
            "detail_days",
            "detail_cycles",
            "default_shards",
            "shard_together",
        ]

    def _subset_template(self, name: str) -> list[str]:
        """Empty (no such subsets), or a list holding ``{name}`` in exactly one argument."""
        value = _argument_list(self.cleaned_data.get(f"{name}_args"), f"{name.title()} arguments")
        if value:
            try:
                runners.subset_arguments(value, name, "x")
            except runners.CommandError as exc:
                raise ValidationError(str(exc)) from None
        return value

    def clean_marker_args(self) -> list[str]:
        return self._subset_template("marker")

    def clean_keyword_args(self) -> list[str]:
        return self._subset_template("keyword")

    def clean_deploy_command(self) -> list[str]:
        return _argument_list(self.cleaned_data.get("deploy_command"), "Deploy command")

    def clean_test_command(self) -> list[str]:
        return _argument_list(self.cleaned_data.get("test_command"), "Test command")

    def clean_health_check(self) -> list[str]:
        return _argument_list(self.cleaned_data.get("health_check"), "Health check")

    def clean_setup_command(self) -> list[str]:
        return _argument_list(self.cleaned_data.get("setup_command"), "Setup command")

    def clean_setup_cache_files(self) -> list[str]:
        value = self.cleaned_data.get("setup_cache_files")
        return [] if value in (None, "") else value  # checked with the rest by services.environments

    def clean_default_shards(self) -> int:
        value = self.cleaned_data.get("default_shards") or 1
        if not 1 <= value <= SHARDS_MAX:
            raise ValidationError(f"Default shards: 1 (not sharded) to {SHARDS_MAX}.")
        return value

    def clean_shard_together(self) -> list[str]:
        value = self.cleaned_data.get("shard_together") or []
        if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
            raise ValidationError('Shard together must be a JSON list of file globs, e.g. ["tests/flows/*"].')
        return value

    def clean_unreachable_share(self) -> int:
        value = self.cleaned_data.get("unreachable_share") or 0
        if value > 100:
            raise ValidationError("Unreachable share is a percentage: 0 (off) to 100.")
        return value

    def clean_env_vars(self) -> dict[str, str]:
        value = self.cleaned_data.get("env_vars") or {}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValidationError("Environment variables must be a JSON object of strings.")
        return value

    def clean(self) -> dict:
        """Last, the rules of ``services.environments`` (as ``environment apply``, the API and the set-up form)."""
        cleaned = super().clean()
        if self.errors:
            return cleaned
        document = environments.export(self.instance) | {k: v for k, v in cleaned.items() if k in environments.keys()}
        try:
            environments.validate(document)
        except environments.SpecInvalid as exc:
            for problem in exc.problems:
                field = problem.key.split("[", 1)[0].split(".", 1)[0]
                self.add_error(field if field in self.fields else None, str(problem))
        return cleaned


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    form = EnvironmentForm
    list_display = ["name", "default_revision", "timeout_s", "end_to_end"]
    search_fields = ["name"]


class CriterionInline(admin.TabularInline):
    model = SuccessCriterion
    extra = 0


@admin.register(LoopSession)
class LoopSessionAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "environment", "status", "cycle_count", "created_at"]
    list_filter = ["status", "environment"]
    search_fields = ["title", "slug"]
    prepopulated_fields = {"slug": ["title"]}
    raw_id_fields = ["latest_run"]
    inlines = [CriterionInline]

    def delete_model(self, request: HttpRequest, obj: LoopSession) -> None:
        deletion.delete_sessions(LoopSession.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        deletion.delete_sessions(queryset)


@admin.register(Cycle)
class CycleAdmin(admin.ModelAdmin):
    list_display = ["session", "number", "started_at"]
    list_filter = ["session"]


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["id", "environment", "revision", "commit_sha", "status", "created_at", "finished_at"]
    list_filter = ["status", "environment"]
    raw_id_fields = ["cycle", "triggered_by"]
    readonly_fields = ["command", "log_tail", "log_path", "heartbeat_at", "exit_code"]


@admin.register(TestRun)
class TestRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "session",
        "cycle",
        "status",
        "total",
        "passed",
        "failed",
        "errors",
        "pass_rate",
        "created_at",
    ]
    list_filter = ["status", "source", "session"]
    raw_id_fields = ["session", "cycle", "deployment", "rerun_of", "triggered_by"]
    readonly_fields = ["content_hash", "command", "log_tail", "by_priority", "metrics"]
    list_select_related = ["session", "cycle"]

    def delete_model(self, request: HttpRequest, obj: TestRun) -> None:
        deletion.delete_runs(TestRun.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        deletion.delete_runs(queryset)


@admin.register(TestCase)
class TestCaseAdmin(admin.ModelAdmin):
    list_display = ["short_nodeid", "environment", "priority", "area"]
    list_filter = ["environment", "priority", "area"]
    search_fields = ["nodeid"]
    list_select_related = ["environment", "area"]
    readonly_fields = ["nodeid_hash"]

    @admin.display(description="node id")
    def short_nodeid(self, obj: TestCase) -> str:
        return obj.nodeid[:150]


@admin.register(TestResult)
class TestResultAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "case", "outcome", "duration", "suspect"]
    list_filter = ["outcome", "suspect"]
    raw_id_fields = ["run", "case", "signature"]
    show_full_result_count = False


@admin.register(FailureSignature)
class FailureSignatureAdmin(admin.ModelAdmin):
    list_display = ["title", "environment", "status", "category", "result_count", "test_count", "last_seen_at"]
    list_filter = ["status", "category", "environment"]
    search_fields = ["title", "normalized"]
    raw_id_fields = ["merged_into", "first_seen_run", "last_seen_run"]


class WhyStepInline(admin.TabularInline):
    model = WhyStep
    extra = 0


@admin.register(Analysis)
class AnalysisAdmin(admin.ModelAdmin):
    list_display = ["id", "signature", "status", "author", "updated_at"]
    list_filter = ["status"]
    raw_id_fields = ["signature", "author"]
    inlines = [WhyStepInline]


@admin.register(AnalysisEdit)
class AnalysisEditAdmin(admin.ModelAdmin):
    list_display = ["analysis", "user", "action", "at"]
    raw_id_fields = ["analysis", "user"]


@admin.register(Fix)
class FixAdmin(admin.ModelAdmin):
    list_display = ["sha", "analysis", "status", "deployment", "verified_by"]
    list_filter = ["status"]
    raw_id_fields = ["analysis", "deployment", "verified_by", "author"]


@admin.register(BusinessArea)
class BusinessAreaAdmin(admin.ModelAdmin):
    list_display = ["name", "mrr"]


@admin.register(ImpactRule)
class ImpactRuleAdmin(admin.ModelAdmin):
    list_display = ["position", "match", "pattern", "priority", "area", "environment"]
    list_editable = ["position"]
    list_display_links = ["pattern"]


@admin.register(SignatureCategory)
class SignatureCategoryAdmin(admin.ModelAdmin):
    """A category added, changed or removed relabels every signature (explicitly: no model signal does it)."""

    list_display = ["name", "pattern", "position"]

    def save_model(self, request: HttpRequest, obj: SignatureCategory, form: object, change: bool) -> None:
        super().save_model(request, obj, form, change)
        signatures.apply_categories()

    def delete_model(self, request: HttpRequest, obj: SignatureCategory) -> None:
        super().delete_model(request, obj)
        signatures.apply_categories()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        super().delete_queryset(request, queryset)
        signatures.apply_categories()


class ApiTokenForm(forms.ModelForm):
    """Scope and expiry of a token; on add, the token itself is made by ApiTokenAdmin.save_model."""

    class Meta:
        model = ApiToken
        fields = ["user", "name", "scope_read", "scope_upload", "scope_trigger", "expires_at"]

    def clean(self) -> dict:
        data = super().clean()
        if not any(data.get(f"scope_{scope}") for scope in ApiToken.SCOPES):
            raise ValidationError("Scope: tick at least one of read, upload and trigger.")
        expires_at = data.get("expires_at")
        if expires_at is not None and self.instance.pk is None and expires_at <= timezone.now():
            self.add_error("expires_at", "Expires at: a new token must expire in the future (or leave it empty).")
        return data


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens for CI: listed by prefix, issued here (shown once), revoked by deleting them."""

    form = ApiTokenForm
    list_display = ["prefix", "user", "name", "scope", "expires_at", "state", "last_used_at", "created_at"]
    list_filter = ["scope_read", "scope_upload", "scope_trigger"]
    search_fields = ["prefix", "name", "user__username"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name", "scope_read", "scope_upload", "scope_trigger", "expires_at"]
        return [
            "prefix",
            "user",
            "name",
            "scope_read",
            "scope_upload",
            "scope_trigger",
            "expires_at",
            "created_at",
            "last_used_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["prefix", "user", "created_at", "last_used_at"]

    @admin.display(description="scope")
    def scope(self, obj: ApiToken) -> str:
        return ", ".join(obj.scopes) or "(none)"

    @admin.display(description="state")
    def state(self, obj: ApiToken) -> str:
        if obj.expires_at is not None and obj.expires_at <= timezone.now():
            return "expired"
        return "active"

    @admin.action(description="Revoke selected tokens (delete them: they stop working at once)")
    def revoke(self, request, queryset) -> None:
        prefixes = sorted(queryset.values_list("prefix", flat=True))
        queryset.delete()
        self.message_user(request, f"Revoked {len(prefixes)} token(s): {', '.join(prefixes)}", messages.SUCCESS)

    def save_model(self, request, obj: ApiToken, form, change: bool) -> None:
        if not change:
            token, obj.prefix, obj.token_hash = new_token()
            request._issued_token = token  # shown once by response_add, never stored
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj: ApiToken, post_url_continue=None):
        token = getattr(request, "_issued_token", None)
        if token is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Token issued",
            "token": token,
            "obj": obj,
            "changelist_url": reverse("admin:loop_sessions_apitoken_changelist"),
        }
        return TemplateResponse(request, "admin/loop_sessions/apitoken/issued.html", context)


# Webhooks, their deliveries and quarantines have their admin pages in a module of their own.
from . import admin_webhooks  # noqa: E402, F401
