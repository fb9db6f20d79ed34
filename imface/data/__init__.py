"""imface.data"""
