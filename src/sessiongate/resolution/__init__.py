"""The resolver's parts, each small and on its own: who speaks (`caller`), who may see
what (`visibility`), what a refusal suggests (`suggestions`), how sessions come to exist
(`creation`) and which sessions this process remembers (`known`).

`sessiongate.resolver.Resolver` puts them in order; nothing else uses them directly.
"""
