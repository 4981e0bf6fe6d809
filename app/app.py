"Placeholder until the app lands: `make app` must already open something."
import gradio as gr

if __name__ == '__main__':
    with gr.Blocks(title='vega3d_nb') as demo:
        gr.Markdown('# vega3d_nb\nThe explorer app is being built.')
    demo.launch(server_name='127.0.0.1', server_port=7860)
