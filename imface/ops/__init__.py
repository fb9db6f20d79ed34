"""imface.ops"""
