import YAML

/// `YAML.Mark` under a name that does not clash with `Yams.Mark` in files that import both (the module `YAML` is
/// shadowed by its enum `YAML`, so `YAML.Mark` cannot be written).
typealias YAMLMark = Mark
