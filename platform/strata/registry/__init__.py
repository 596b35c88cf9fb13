"""The asset registry: dataset declarations (YAML in ``assets_config/``) parsed into typed specs."""
