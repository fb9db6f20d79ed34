"""imface.components"""
