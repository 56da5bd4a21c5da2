"""Admin: where environments (the commands workers run), impact rules and categories are configured."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from .models import (
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
            "name", "description", "deploy_command", "test_command", "working_dir", "env_vars", "timeout_s",
            "deploy_timeout_s", "revisions", "default_revision", "writes_report_log", "writes_junit", "end_to_end",
            "metric_targets",
        ]

    def clean_deploy_command(self) -> list[str]:
        return _argument_list(self.cleaned_data.get("deploy_command"), "Deploy command")

    def clean_test_command(self) -> list[str]:
        return _argument_list(self.cleaned_data.get("test_command"), "Test command")

    def clean_env_vars(self) -> dict[str, str]:
        value = self.cleaned_data.get("env_vars") or {}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValidationError("Environment variables must be a JSON object of strings.")
        return value


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
    list_display = ["id", "session", "cycle", "status", "total", "passed", "failed", "errors", "pass_rate", "created_at"]
    list_filter = ["status", "source", "session"]
    raw_id_fields = ["session", "cycle", "deployment", "rerun_of", "triggered_by"]
    readonly_fields = ["content_hash", "command", "log_tail", "by_priority", "metrics"]
    list_select_related = ["session", "cycle"]


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
    list_display = ["name", "pattern", "position"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created_at", "last_used_at"]
    readonly_fields = ["prefix", "token_hash", "created_at", "last_used_at"]
