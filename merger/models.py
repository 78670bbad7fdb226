"""Sources, merge runs with their per-source results, and the de-duplicated nodes."""

from __future__ import annotations

import hashlib
import secrets

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Source(models.Model):
    """A subscription URL (or local file) that every merge fetches while it is enabled."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    url = models.CharField(
        _("URL"), max_length=2000, help_text=_("An http(s):// URL, a file:// URL or a path on this machine.")
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    user_agent = models.CharField(
        _("User-Agent"),
        max_length=300,
        blank=True,
        help_text=_(
            "Sent instead of the default; some providers only answer known clients such as clash.meta."
        ),
    )
    headers = models.JSONField(_("extra headers"), default=dict, blank=True)
    notes = models.TextField(_("notes"), blank=True)

    # Conditional GET state and the provider's traffic quota from the last successful fetch.
    etag = models.CharField(max_length=500, blank=True, editable=False)
    last_modified = models.CharField(max_length=100, blank=True, editable=False)
    userinfo = models.JSONField(_("subscription-userinfo"), null=True, blank=True, editable=False)

    last_fetched_at = models.DateTimeField(_("last fetched"), null=True, blank=True, editable=False)
    last_ok_at = models.DateTimeField(_("last success"), null=True, blank=True, editable=False)
    last_error = models.CharField(_("last error"), max_length=500, blank=True, editable=False)
    last_node_count = models.PositiveIntegerField(_("nodes at last fetch"), default=0, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("source")
        verbose_name_plural = _("sources")

    def __str__(self) -> str:
        return self.name


class MergeRun(models.Model):
    """One merge: which inputs it read, what it counted, and where its exports are."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        CANCELLED = "cancelled", _("cancelled")

    class Kind(models.TextChoices):
        MERGE = "merge", _("merge")
        # `merge --from`: inputs given on the command line, merged into exports only.
        ADHOC = "adhoc", _("merge of given inputs")
        PROBE = "probe", _("probe")
        EXPORT = "export", _("export")

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    # Probe and export runs share this table so the operations page follows them the same way,
    # but only merge runs decide which nodes and exports are served.
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.MERGE, db_index=True)
    trigger = models.CharField(
        max_length=40, default="command", help_text=_("What started the run: command, schedule, web or api.")
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    stage = models.CharField(max_length=40, blank=True)
    progress = models.FloatField(default=0.0, help_text=_("0 to 100"))

    sources_ok = models.PositiveIntegerField(default=0)
    sources_failed = models.PositiveIntegerField(default=0)
    links_seen = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    unique = models.PositiveIntegerField(default=0)
    per_protocol = models.JSONField(default=dict, blank=True)
    invalid_reasons = models.JSONField(default=dict, blank=True)
    export_skipped = models.JSONField(
        default=dict, blank=True, help_text=_("Per export format, the nodes left out and why.")
    )
    export_dir = models.CharField(max_length=1000, blank=True)
    error = models.TextField(blank=True)

    probed = models.PositiveIntegerField(default=0)
    alive = models.PositiveIntegerField(default=0)

    # Background execution: the Celery task running the merge, the worker's last sign of life
    # (a run whose heartbeat stops is taken as dead) and a cancel request that the run polls.
    task_id = models.CharField(max_length=255, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("merge run")
        verbose_name_plural = _("merge runs")

    def __str__(self) -> str:
        return f"#{self.pk} {self.status}"

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish, or None while the run has not finished."""
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class SourceResult(models.Model):
    """The outcome of one input in one run: fetch result, detected format and counts."""

    run = models.ForeignKey(MergeRun, on_delete=models.CASCADE, related_name="source_results")
    source = models.ForeignKey(
        Source, null=True, blank=True, on_delete=models.SET_NULL, related_name="results"
    )
    label = models.CharField(
        max_length=300, help_text=_("The source name, or the path or URL given to --from.")
    )
    url = models.CharField(max_length=2000)
    ok = models.BooleanField(default=False)
    http_status = models.PositiveIntegerField(null=True, blank=True)
    not_modified = models.BooleanField(default=False)
    error = models.CharField(max_length=500, blank=True)
    format = models.CharField(max_length=40, blank=True)
    entries = models.PositiveIntegerField(default=0)
    nodes = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    invalid_reasons = models.JSONField(default=dict, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    elapsed_ms = models.FloatField(default=0.0)
    userinfo = models.JSONField(null=True, blank=True)
    stale = models.BooleanField(
        default=False, help_text=_("The fetch failed and the last good content was used.")
    )

    class Meta:
        ordering = ["run", "label"]
        verbose_name = _("source result")
        verbose_name_plural = _("source results")

    def __str__(self) -> str:
        return f"{self.label} in run {self.run_id}"


class Node(models.Model):
    """A unique proxy server, identified by the fingerprint of its connection settings."""

    fingerprint = models.CharField(max_length=32, unique=True)
    protocol = models.CharField(max_length=20, db_index=True)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField()
    name = models.CharField(max_length=500, blank=True)
    link = models.TextField(help_text=_("Canonical share link."))
    data = models.JSONField(default=dict, help_text=_("Every field of the parsed node."))
    origins = models.JSONField(default=list, blank=True, help_text=_("Labels of the inputs it came from."))
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now, db_index=True)
    last_run = models.ForeignKey(MergeRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    # Latest probe outcome, copied from the newest ProbeResult so that lists and filters need no join.
    alive = models.BooleanField(null=True, blank=True, db_index=True)
    latency_ms = models.FloatField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    success_ratio = models.FloatField(
        null=True, blank=True, help_text=_("Share of the last N checks that passed.")
    )
    score = models.FloatField(default=0.0, db_index=True)
    country = models.CharField(
        max_length=2, blank=True, help_text=_("ISO 3166 country code, from the name or GeoIP.")
    )

    class Meta:
        ordering = ["protocol", "host", "port"]
        verbose_name = _("node")
        verbose_name_plural = _("nodes")

    def __str__(self) -> str:
        return self.name or f"{self.protocol} {self.host}:{self.port}"


class ProbeResult(models.Model):
    """One check of one node: a TCP connect, a TLS handshake or a URL test through a proxy core."""

    class Kind(models.TextChoices):
        TCP = "tcp", _("TCP connect")
        TLS = "tls", _("TLS handshake")
        URL = "url", _("URL test through a core")

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="probes")
    run = models.ForeignKey(MergeRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    checked_at = models.DateTimeField(default=timezone.now)
    alive = models.BooleanField(null=True, help_text=_("Empty when the node could not be tested this way."))
    latency_ms = models.FloatField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    tls_verified = models.BooleanField(
        null=True, help_text=_("TLS checks: whether the certificate verified. Empty for other checks.")
    )

    class Meta:
        ordering = ["-checked_at"]
        indexes = [models.Index(fields=["node", "-checked_at"])]
        verbose_name = _("probe result")
        verbose_name_plural = _("probe results")

    def __str__(self) -> str:
        return f"{self.kind} {self.node_id} {'alive' if self.alive else 'dead'}"


def new_profile_token() -> str:
    """Return a URL-safe token with 256 random bits."""
    return secrets.token_urlsafe(32)


def hash_profile_token(token: str) -> str:
    """Return the SHA-256 hex digest under which a profile token is looked up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class OutputProfile(models.Model):
    """A filtered, ranked view of the nodes, served to clients at /sub/<token>."""

    class Format(models.TextChoices):
        RAW = "raw", _("raw links")
        BASE64 = "base64", _("base64")
        CLASH = "clash", _("Clash.Meta YAML")
        SINGBOX = "singbox", _("sing-box JSON")
        JSON = "json", _("JSON report")
        CSV = "csv", _("CSV")
        SIP008 = "sip008", _("SIP008 JSON")

    class Sort(models.TextChoices):
        SCORE = "score", _("score")
        LATENCY = "latency", _("latency")
        NAME = "name", _("name")

    class UserinfoPolicy(models.TextChoices):
        FIRST = "first", _("from the first source")
        SUM = "sum", _("summed over sources")
        NONE = "none", _("none")

    name = models.CharField(_("name"), max_length=100, unique=True)
    token = models.CharField(max_length=64, unique=True, default=new_profile_token, editable=False)
    # /sub/<token> finds the profile by this digest rather than by the token, so the database
    # index comparison cannot leak how much of a guessed token is right; save() keeps it current.
    # NULL rather than "" before save() fills it, because the column is unique.
    token_sha256 = models.CharField(max_length=64, unique=True, editable=False, null=True)  # noqa: DJ001
    include_regex = models.CharField(_("include names matching"), max_length=500, blank=True)
    exclude_regex = models.CharField(_("exclude names matching"), max_length=500, blank=True)
    protocols = models.JSONField(_("protocols"), default=list, blank=True, help_text=_("Empty means all."))
    ports = models.JSONField(_("ports"), default=list, blank=True, help_text=_("Empty means all."))
    regions = models.JSONField(
        _("regions"), default=list, blank=True, help_text=_("ISO country codes; empty means all.")
    )
    alive_only = models.BooleanField(_("alive only"), default=False)
    max_latency_ms = models.PositiveIntegerField(_("maximum latency (ms)"), null=True, blank=True)
    top_n = models.PositiveIntegerField(_("top N"), null=True, blank=True)
    per_protocol_cap = models.PositiveIntegerField(_("maximum per protocol"), null=True, blank=True)
    sort = models.CharField(_("sort by"), max_length=20, choices=Sort.choices, default=Sort.SCORE)
    rename_template = models.CharField(
        _("rename template"),
        max_length=200,
        blank=True,
        help_text=_("For example '{flag} {country} {protocol} {index} {latency}'; empty keeps the names."),
    )
    default_format = models.CharField(
        _("default format"), max_length=20, choices=Format.choices, default=Format.BASE64
    )
    userinfo_policy = models.CharField(
        _("subscription-userinfo"),
        max_length=10,
        choices=UserinfoPolicy.choices,
        default=UserinfoPolicy.FIRST,
    )
    update_interval_hours = models.PositiveIntegerField(_("update interval (hours)"), default=12)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    revoked = models.BooleanField(_("revoked"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("output profile")
        verbose_name_plural = _("output profiles")

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        self.token_sha256 = hash_profile_token(self.token)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "token" in update_fields:
            kwargs["update_fields"] = {*update_fields, "token_sha256"}
        super().save(*args, **kwargs)


class MergeSettings(models.Model):
    """The fetch settings of every merge, edited on the Configuration page; one row (pk 1).

    Defaults come from settings.VPNMERGER when the row is first created, so the environment still
    seeds a fresh installation. The environment only seeds the row: after that the values are read
    from the database, and changing VPNMERGER_FETCH_* has no effect until the row is edited here.
    """

    fetch_concurrency = models.PositiveIntegerField(
        _("parallel downloads"),
        validators=[MinValueValidator(1), MaxValueValidator(64)],
        help_text=_("How many sources are downloaded at once, 1 to 64."),
    )
    fetch_timeout = models.FloatField(
        _("download timeout (s)"),
        validators=[MinValueValidator(1.0), MaxValueValidator(300.0)],
        help_text=_("Seconds before one download attempt is abandoned, 1 to 300."),
    )
    fetch_retries = models.PositiveIntegerField(
        _("retries"),
        validators=[MaxValueValidator(10)],
        help_text=_("Extra attempts after a timeout or a 5xx answer, 0 to 10."),
    )
    fetch_max_bytes = models.PositiveIntegerField(
        _("maximum body size (bytes)"),
        validators=[MinValueValidator(1024), MaxValueValidator(200 * 1024 * 1024)],
        help_text=_("Larger subscription bodies are rejected, 1 KiB to 200 MiB."),
    )
    user_agent = models.CharField(
        _("default User-Agent"),
        max_length=300,
        help_text=_("Sent to sources that set no User-Agent of their own."),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("merge settings")
        verbose_name_plural = _("merge settings")

    def __str__(self) -> str:
        return str(_("merge settings"))

    @classmethod
    def load(cls) -> MergeSettings:
        """Return the settings row, creating it from settings.VPNMERGER when missing."""
        from django.conf import settings

        row = cls.objects.filter(pk=1).first()
        if row is not None:
            return row
        options = settings.VPNMERGER
        values = {
            "fetch_concurrency": options["FETCH_CONCURRENCY"],
            "fetch_timeout": options["FETCH_TIMEOUT"],
            "fetch_retries": options["FETCH_RETRIES"],
            "fetch_max_bytes": options["FETCH_MAX_BYTES"],
            "user_agent": options["USER_AGENT"],
        }
        # A value the Configuration page would reject must not be stored, or every later merge
        # reads it. settings.py checks the same limits, so this raises only when the two disagree.
        cls(pk=1, **values).full_clean(validate_unique=False)
        row, _created = cls.objects.get_or_create(pk=1, defaults=values)
        return row

    def as_options(self) -> dict[str, object]:
        """Return the values under the settings.VPNMERGER key names that the merge service reads."""
        return {
            "FETCH_CONCURRENCY": self.fetch_concurrency,
            "FETCH_TIMEOUT": self.fetch_timeout,
            "FETCH_RETRIES": self.fetch_retries,
            "FETCH_MAX_BYTES": self.fetch_max_bytes,
            "USER_AGENT": self.user_agent,
        }
