"""imface.engine"""
