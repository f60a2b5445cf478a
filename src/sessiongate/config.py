"""Configuration: JSON5 files, ${ENV} substitution, strict pydantic models.

Lookup order: an explicit path, then ``SESSIONGATE_CONFIG``, then
``~/.sessiongate/config.json5``; with no file the embedded default applies
(SQLite under the state dir, two echo agents). Every problem in a file is
reported at once, one ``- dotted.path: what is wrong (got …)`` line each.
"""

from __future__ import annotations

import collections
import difflib
import functools
import ipaddress
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import json5
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel

from sessiongate.errors import ConfigError, plain_message
from sessiongate.keys import AGENT_ID_RE, DmScope
from sessiongate.paths import default_config_path, state_dir
from sessiongate.tool_names import DEFAULT_TOOLS, ToolName

__all__ = [
    "AgentConfig",
    "CreateOnMissSetting",
    "GatewayConfig",
    "LimitsConfig",
    "SessionGateConfig",
    "config_file",
    "default_config_path",
    "load_config",
    "state_dir",
]

CreateOnMissValue = bool | Literal["warn"]


def _create_on_miss(value: Any) -> Any:
    if isinstance(value, bool) or value == "warn":
        return value
    raise ValueError('expected boolean or "warn"')


CreateOnMissSetting = Annotated[
    CreateOnMissValue,
    BeforeValidator(_create_on_miss),
    Field(json_schema_extra={"enum": [True, False, "warn"]}),
]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


class AuthConfig(_Model):
    token: str | None = Field(default=None, min_length=16)


class SessionRule(_Model):
    match: str = Field(min_length=1)
    create_on_miss: CreateOnMissSetting


class GatewaySessionsConfig(_Model):
    create_on_miss: CreateOnMissSetting = True
    rules: list[SessionRule] = Field(default_factory=list)


class GatewayToolsConfig(_Model):
    allow: list[str] = Field(
        default_factory=lambda: [name.value for name in DEFAULT_TOOLS],
        json_schema_extra={"items": {"type": "string", "enum": [name.value for name in ToolName]}},
    )

    @field_validator("allow")
    @classmethod
    def _known_tools(cls, allow: list[str]) -> list[str]:
        known = [name.value for name in ToolName]
        for name in allow:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"unknown tool {name!r}{hint}; tools are {', '.join(known)}")
        return allow


class GatewayCompatConfig(_Model):
    openclaw: bool = False


class LimitsConfig(_Model):
    """Budgets that keep one client (authenticated or not) from exhausting the gateway."""

    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    body_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    keep_alive_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    max_connections: int = Field(default=1000, ge=1)
    max_connections_per_client: int = Field(default=256, ge=1)
    ping_interval_seconds: float = Field(default=20.0, gt=0, le=3600)
    ping_timeout_seconds: float = Field(default=20.0, gt=0, le=3600)
    max_in_flight_per_connection: int = Field(default=16, ge=1, le=10_000)
    max_queued_bytes_per_connection: int = Field(default=8_388_608, ge=65_536)
    requests_per_second_per_token: float | None = Field(default=None, gt=0)
    request_burst_per_token: int = Field(default=100, ge=1)
    failed_auth_burst_per_client: int = Field(default=20, ge=1)
    failed_auth_per_minute_per_client: float = Field(default=30.0, gt=0)


class GatewayConfig(_Model):
    port: int = Field(default=18789, ge=0, le=65535)
    bind: str = "loopback"
    auth: AuthConfig = Field(default_factory=AuthConfig)
    sessions: GatewaySessionsConfig = Field(default_factory=GatewaySessionsConfig)
    tools: GatewayToolsConfig = Field(default_factory=GatewayToolsConfig)
    compat: GatewayCompatConfig = Field(default_factory=GatewayCompatConfig)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)

    @field_validator("bind")
    @classmethod
    def _bind(cls, value: str) -> str:
        if value in ("loopback", "all"):
            return value
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError('expected "loopback", "all" or an IP address') from None
        return value

    @property
    def host(self) -> str:
        """The address to listen on."""
        return {"loopback": "127.0.0.1", "all": "0.0.0.0"}.get(self.bind, self.bind)  # noqa: S104

    @property
    def is_loopback(self) -> bool:
        """Whether the listen address is on this machine only."""
        return ipaddress.ip_address(self.host).is_loopback


class RetentionRule(_Model):
    """Which sessions a retention rule covers, and what it does with them once idle.

    The first rule whose `agent` and `match` globs both fit a session decides for it.
    """

    agent: str = Field(default="*", min_length=1)  # agent-id glob
    match: str = Field(default="*", min_length=1)  # glob on the canonical key
    archive_after_days: float | None = Field(default=None, gt=0)  # idle days, then archived
    delete_after_days: float | None = Field(default=None, gt=0)  # days archived, then deleted


class RetentionConfig(_Model):
    """`session.retention`: the janitor archives idle sessions and deletes archived ones
    (never a main session), on one gateway process at a time."""

    rules: list[RetentionRule] = Field(default_factory=list)
    interval_minutes: float = Field(default=60.0, gt=0, le=10_080)


class SessionConfig(_Model):
    dm_scope: DmScope = DmScope.MAIN
    retention: RetentionConfig = Field(default_factory=RetentionConfig)


class StorageConfig(_Model):
    url: str | None = None
    timeout_seconds: float = Field(default=5.0, gt=0, le=600)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        problem = storage_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value


def storage_url_problem(url: str) -> str | None:
    """Why `url` is not a store URL (None when it is one)."""
    if url.strip() == "":
        return (
            "is empty (an unset environment variable?); leave storage.url out to use "
            "the state dir's state.db"
        )
    if url != url.strip():
        return "has spaces around it"
    if url == "memory://":
        return None
    if url.startswith("sqlite:"):
        return _sqlite_url_problem(url)
    if url.startswith(("postgresql://", "postgres://")):
        return _postgres_url_problem(url)
    return "expected sqlite:///relative.db, sqlite:////absolute.db, postgresql://… or memory://"


def _sqlite_url_problem(url: str) -> str | None:
    if not url.startswith("sqlite:///") or url in ("sqlite:///", "sqlite:////"):
        return (
            "a SQLite URL names a file after three slashes: sqlite:///relative/path.db "
            "(from the current folder) or sqlite:////absolute/path.db (four slashes)"
        )
    return None


def _postgres_url_problem(url: str) -> str | None:
    import urllib.parse

    try:
        _ = urllib.parse.urlsplit(url).port
    except ValueError as exc:
        return f"is not a valid postgresql:// URL ({exc})"
    return None


class MetricsConfig(_Model):
    token: str | None = Field(default=None, min_length=16)


class LoggingConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "human", "json"] = "auto"


class TracingConfig(_Model):
    otlp_endpoint: str | None = Field(default=None, min_length=1, max_length=2000)
    service_name: str = Field(default="sessiongate", min_length=1, max_length=200)


class AuditConfig(_Model):
    path: str = ""
    max_bytes: int = Field(default=10_485_760, ge=1024)
    backups: int = Field(default=5, ge=0, le=100)


class SessionsToolConfig(_Model):
    visibility: Literal["self", "tree", "agent", "all"] = "tree"


class AgentToAgentConfig(_Model):
    enabled: bool = False
    allow: list[str] = Field(default_factory=lambda: ["*"])


class ToolsConfig(_Model):
    sessions: SessionsToolConfig = Field(default_factory=SessionsToolConfig)
    agent_to_agent: AgentToAgentConfig = Field(default_factory=AgentToAgentConfig)


class ProviderConfig(_Model):
    base_url: str = Field(pattern=r"^https?://")
    api_key: str = "sessiongate"
    timeout_seconds: float = Field(default=60.0, gt=0)


class ModelsConfig(_Model):
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)


class AgentSessionsConfig(_Model):
    create_on_miss: CreateOnMissSetting | None = None


class WebhookConfig(_Model):
    url: str = Field(pattern=r"^https?://")
    timeout_seconds: float = Field(default=30.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)


class AgentDefaults(_Model):
    model: str = "echo"
    system_prompt: str = "You are a helpful agent in a sessiongate multi-agent system."
    max_tool_rounds: int = Field(default=8, ge=1, le=64)


class AgentConfig(_Model):
    id: str
    default: bool = False
    name: str | None = None
    model: str | None = None
    system_prompt: str | None = None
    webhook: WebhookConfig | None = None
    sessions: AgentSessionsConfig = Field(default_factory=AgentSessionsConfig)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if AGENT_ID_RE.fullmatch(value) is None:
            raise ValueError("agent id must match [a-z0-9][a-z0-9_-]{0,63}")
        return value


def _default_agents() -> list[AgentConfig]:
    return [AgentConfig(id="atlas", default=True), AgentConfig(id="peggy")]


class AgentsConfig(_Model):
    defaults: AgentDefaults = Field(default_factory=AgentDefaults)
    entries: list[AgentConfig] = Field(default_factory=_default_agents, min_length=1, alias="list")


class SessionGateConfig(_Model):
    """The whole configuration (see docs/gateway/configuration-reference.md)."""

    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    session: SessionConfig = Field(default_factory=SessionConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    agents: AgentsConfig = Field(default_factory=AgentsConfig)

    def model_of(self, agent: AgentConfig) -> str:
        """The model an agent runs (its own, else agents.defaults.model)."""
        return agent.model or self.agents.defaults.model

    @property
    def default_agent(self) -> AgentConfig:
        """The agent that bare `main` and hook sessions belong to."""
        return next((a for a in self.agents.entries if a.default), self.agents.entries[0])

    def agent(self, agent_id: str) -> AgentConfig | None:
        """The configured agent with this id, if any."""
        return self._agents_by_id.get(agent_id)

    @functools.cached_property
    def _agents_by_id(self) -> dict[str, AgentConfig]:
        return {agent.id: agent for agent in self.agents.entries}

    @functools.cached_property
    def agent_ids(self) -> list[str]:
        """Every configured agent id, in config order."""
        return list(self._agents_by_id)

    def agent_index(self, agent_id: str) -> int | None:
        """The position of this agent in agents.list (for messages naming its setting)."""
        return self._agent_indexes.get(agent_id)

    @functools.cached_property
    def _agent_indexes(self) -> dict[str, int]:
        return {agent.id: i for i, agent in enumerate(self.agents.entries)}

    @property
    def storage_url(self) -> str:
        """storage.url, or SQLite under the state dir when unset."""
        return self.storage.url or f"sqlite:///{state_dir() / 'state.db'}"

    @property
    def audit_path(self) -> Path:
        """audit.path with ~ expanded, or the state dir default."""
        raw = self.audit.path or str(state_dir() / "audit" / "sessions.jsonl")
        return Path(raw).expanduser()


SECRET_KEYS = frozenset({"token", "apiKey", "api_key", "headers"})  # never echoed in errors
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _substitute(value: Any, path: str, missing: list[str]) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                missing.append(f"- {path}: environment variable {name} is not set")
                return ""
            return os.environ[name]

        return _ENV_RE.sub(replace, value)
    if isinstance(value, dict):
        return {
            k: _substitute(v, f"{path}.{k}" if path else str(k), missing) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_substitute(v, f"{path}.{i}", missing) for i, v in enumerate(value)]
    return value


def _model_problem(model: str, has_webhook: bool, providers: dict[str, Any]) -> str | None:
    if model == "echo":
        return None
    if model == "webhook":
        return None if has_webhook else "model 'webhook' needs a webhook: {url} section"
    provider = model.split("/", 1)[0]
    if "/" not in model or provider not in providers:
        known = ", ".join(sorted(providers)) or "none configured"
        return (
            f"unknown model {model!r}: use 'echo', 'webhook' or "
            f"'<provider>/<model>' with a provider from models.providers ({known})"
        )
    return None


def _agent_entries(data: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    agents = data.get("agents")
    entries = agents.get("list") if isinstance(agents, dict) else None
    if not isinstance(entries, list):
        return []
    return [(i, raw) for i, raw in enumerate(entries) if isinstance(raw, dict)]


def _duplicate_problems(entries: list[tuple[int, dict[str, Any]]]) -> list[str]:
    problems = []
    counts = collections.Counter(raw.get("id") for _, raw in entries)
    for dup in sorted(i for i, n in counts.items() if isinstance(i, str) and n > 1):
        where = ", ".join(str(i) for i, raw in entries if raw.get("id") == dup)
        problems.append(f"- agents.list: duplicate agent id {dup!r} (entries {where})")
    defaults = [str(i) for i, raw in entries if raw.get("default") is True]
    if len(defaults) > 1:
        problems.append(f"- agents.list: more than one agent has default: true "
                        f"(entries {', '.join(defaults)})")  # fmt: skip
    return problems


def _cross_section_problems(data: dict[str, Any]) -> list[str]:
    """Problems across entries and sections, found in the raw data so that no other
    problem (in the same agent or elsewhere) can hide them."""
    entries = _agent_entries(data)
    problems = _duplicate_problems(entries)
    try:
        providers = ModelsConfig.model_validate(data.get("models", {})).providers
        agents = data.get("agents", {})
        default_model = AgentDefaults.model_validate(agents.get("defaults", {})).model
    except (ValidationError, AttributeError):
        return problems  # the section itself is invalid; that is reported on its own
    for i, raw in entries:
        model = raw.get("model") or default_model
        if isinstance(model, str):
            problem = _model_problem(model, isinstance(raw.get("webhook"), dict), providers)
            if problem:
                problems.append(f"- agents.list.{i}.model: {problem}")
    return problems


def _inner_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model inside a field's type (list[X], X | None, dict[str, X]), and whether the
    next path part is a dict key rather than a field."""
    if get_origin(annotation) is dict:
        return _inner_model(get_args(annotation)[1])[0], True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    for arg in get_args(annotation):
        model, _ = _inner_model(arg)
        if model is not None:
            return model, False
    return None, False


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys a config object at `loc` accepts (camelCase)."""
    model: type[BaseModel] | None = SessionGateConfig
    skip_key = False
    for part in loc:
        if model is None:
            return []
        if isinstance(part, int) or skip_key:
            skip_key = False
            continue
        fields = {(f.alias or name): f for name, f in model.model_fields.items()}
        if part not in fields:
            return []
        model, skip_key = _inner_model(fields[part].annotation)
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _unknown_key(loc: tuple[Any, ...]) -> str:
    where = ".".join(str(part) for part in loc)
    close = difflib.get_close_matches(str(loc[-1]), _keys_at(loc[:-1]), n=1, cutoff=0.6)
    return f"- {where}: unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")


def _format_error(error: Any) -> str:
    loc = ".".join(str(part) for part in error["loc"]) or "(root)"
    message = plain_message(str(error["msg"]))
    if error["type"] == "extra_forbidden":
        return _unknown_key(tuple(error["loc"]))
    if error["type"] == "missing":
        return f"- {loc}: required"
    if SECRET_KEYS.intersection(str(part) for part in error["loc"]):
        return f"- {loc}: {message} (value not shown: it is a secret)"
    got = json.dumps(error.get("input"), default=str)
    if len(got) > 80:
        got = got[:77] + "..."
    return f"- {loc}: {message} (got {got})"


def parse_config(data: Any, source: str) -> SessionGateConfig:
    """Validate raw config data; raise ConfigError listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"Invalid config at {source}:\n- (root): expected an object",
            details={"source": source, "problems": ["(root): expected an object"]},
        )
    missing: list[str] = []
    data = _substitute(data, "", missing)
    problems = list(missing)
    config: SessionGateConfig | None = None
    try:
        config = SessionGateConfig.model_validate(data)
    except ValidationError as exc:
        problems.extend(_format_error(e) for e in exc.errors())
    problems.extend(_cross_section_problems(data))
    if problems or config is None:
        raise ConfigError(
            f"Invalid config at {source}:\n" + "\n".join(problems),
            details={"source": source, "problems": [p[2:] for p in problems]},
        )
    return config


def config_file(path: str | Path | None = None) -> Path | None:
    """The file `load_config(path)` reads: `path`, else SESSIONGATE_CONFIG, else the default
    file if it exists; None means the embedded default."""
    explicit = path or os.environ.get("SESSIONGATE_CONFIG")
    if explicit:
        return Path(explicit).expanduser().absolute()
    default = default_config_path()
    return default if default.exists() else None


def load_config(path: str | Path | None = None) -> SessionGateConfig:
    """Load `path`, else SESSIONGATE_CONFIG, else the default file, else the embedded default."""
    file = config_file(path)
    if file is None:
        return SessionGateConfig()
    if not file.exists():
        raise ConfigError(
            f"Invalid config at {file}:\n- (file): no such file",
            details={"source": str(file), "problems": ["(file): no such file"]},
        )
    try:
        data = json5.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        where, what = _syntax_error_at(file, exc)
        raise ConfigError(
            f"Invalid config at {where}:\n- (syntax): {what}",
            details={"source": str(file), "problems": [f"(syntax): {what}"], "at": where},
        ) from None
    return parse_config(data, str(file))


def _syntax_error_at(file: Path, exc: Exception) -> tuple[str, str]:
    """``file:line:column`` and the parser's words (json5 says ``<string>:3 … at column 5``)."""
    text = str(exc)
    found = re.match(r"<string>:(\d+) (.*?)(?: at column (\d+))?$", text, re.S)
    if found is None:
        return str(file), text
    line, what, column = found.groups()
    return f"{file}:{line}" + (f":{column}" if column else ""), what
