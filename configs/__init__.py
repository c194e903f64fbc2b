"""The domain configurations shipped with the package (YAML files beside this one).

``index.config.load_config("configs/vehicle_damage.yaml")`` finds them from a checkout and,
through this package, from an installed wheel too.
"""
