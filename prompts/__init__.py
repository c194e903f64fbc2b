"""The agent's prompt templates (Markdown files beside this one), shipped with the package.

``agent.prompts.Prompts.for_config`` reads them through ``importlib.resources``, so an
installed wheel finds them too; ``agent.prompts_dir`` in a config points at your own folder.
"""
