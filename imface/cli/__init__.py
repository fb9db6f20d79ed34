"""imface.cli"""
